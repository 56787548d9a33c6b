"""send: exactly once per (issue, channel, subscriber) across sends

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

Planning a send skips subscribers that another send of the same issue on the
same channel already reached or is reaching. ``already_received`` counts them.
``resend_reason`` is set only by an explicit, audited resend: such a send plans
everyone again. ``auto_paused_at``, ``next_probe_at`` and ``probe_attempts``
follow a send that paused itself because the relay could not be reached: the
relay is probed with back-off and the send resumes when it answers.
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
        # relay outages: an auto-pause caused by connection failures probes the relay
        batch.add_column(sa.Column("auto_paused_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("next_probe_at", sa.DateTime(), nullable=True))
        batch.add_column(
            sa.Column("probe_attempts", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("send") as batch:
        batch.drop_column("probe_attempts")
        batch.drop_column("next_probe_at")
        batch.drop_column("auto_paused_at")
        batch.drop_column("resend_reason")
        batch.drop_column("already_received")
