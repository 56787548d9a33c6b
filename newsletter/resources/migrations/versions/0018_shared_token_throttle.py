"""the WeChat token shared through the database; login delays per account and address

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-10

* ``wechat_token``: one row per (API base URL, AppID) key: the access token every
  process uses when there is no Redis, the instant it is refreshed early, and its
  generation (how many times it was fetched). A refresh holds the row's lock, so one
  fetch serves every process and a 40001/42001 refreshes once per generation;
* ``login_throttle``: one row per (account, source address), and per address: the
  failures in a row and the instant before which the next attempt is refused. The
  delay grows with each failure; a success clears the row.

(Issue 29. Numbered 0018 so that it can follow 0017 when the branches meet; it revises
0016 here.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wechat_token",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("refresh_at", sa.Float(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
    op.drop_table("wechat_token")
