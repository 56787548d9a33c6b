"""send_audience: also by relay and by the at-risk flag

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07

An ended send's statistics read its deliveries' counts per relay and its at-risk count
from the same kept GROUP BY as its denominators, instead of scanning the deliveries on
every read. The table is a cache (each send's rows are rebuilt on the next read), so it is
recreated empty with the two new key columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

_KEY = ("send_id", "variant", "domain_group", "state")


def _create(extra: bool) -> None:
    cols: list[sa.Column[object]] = [
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(8), nullable=False),
        sa.Column("domain_group", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
    ]
    key = list(_KEY)
    if extra:
        cols += [
            sa.Column("relay", sa.String(64), nullable=False, server_default=""),
            sa.Column("at_risk", sa.Boolean(), nullable=False, server_default=sa.false()),
        ]
        key += ["relay", "at_risk"]
    cols.append(sa.Column("n", sa.BigInteger(), nullable=False))
    op.create_table("send_audience", *cols, sa.PrimaryKeyConstraint(*key))


def upgrade() -> None:
    op.drop_table("send_audience")
    _create(True)


def downgrade() -> None:
    op.drop_table("send_audience")
    _create(False)
