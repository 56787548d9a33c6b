"""send: exactly once per (issue, channel, subscriber) across sends

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

Planning a send skips subscribers that another send of the same issue on the
same channel already reached or is reaching. ``already_received`` counts them.
``resend_reason`` is set only by an explicit, audited resend: such a send plans
everyone again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("send") as batch:
        batch.add_column(
            sa.Column("already_received", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("resend_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("send") as batch:
        batch.drop_column("resend_reason")
        batch.drop_column("already_received")
