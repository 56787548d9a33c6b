"""welcome series: steps per list, their hidden issues and standing sends

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-14

* ``welcome_step``: a list's welcome steps (position, delay after confirmation), each
  with its content (an issue of kind ``welcome``) and its standing send (kind
  ``welcome``), whose deliveries are the ledger: ``UNIQUE (send_id, subscriber_id)``
  sends a step once per subscriber;
* ``issue.kind`` and ``send.kind``: ``weekly``/``issue`` for everything before;
* ``subscription.confirmed_at``: when the list's opt-in was confirmed (delays count
  from it).

(Issue 32.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issue") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="weekly")
        )
    with op.batch_alter_table("send") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="issue")
        )
    with op.batch_alter_table("subscription") as batch:
        batch.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "welcome_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("delay_seconds", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("delay_seconds >= 0", name="ck_welcome_step_delay"),
        sa.ForeignKeyConstraint(["list_id"], ["mailing_list.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"]),
        sa.ForeignKeyConstraint(["send_id"], ["send.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("list_id", "position", name="uq_welcome_step_position"),
    )


def downgrade() -> None:
    op.drop_table("welcome_step")
    with op.batch_alter_table("subscription") as batch:
        batch.drop_column("confirmed_at")
    with op.batch_alter_table("send") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("issue") as batch:
        batch.drop_column("kind")
