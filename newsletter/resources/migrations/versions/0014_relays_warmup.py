"""several relays and warm-up

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28

* ``delivery.relay``: the name of the relay of a delivery's last attempt (the one that
  carried it, once sent);
* ``relay_state``: relays taken out of service (connection failures or a burst of 4xx),
  their probe schedule; shared by every worker, also in the embedded mode;
* ``warmup_plan``: per sending domain warm-up ramps set from the command line;
* ``warmup_count``: messages per sending domain, day and recipient domain.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("relay", sa.String(length=64), nullable=True))
    op.create_table(
        "relay_state",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("down_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_probe_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probe_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("flaps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
    )
    op.create_table(
        "warmup_plan",
        sa.Column("domain", sa.String(length=255), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("schedule", JSONType, nullable=True),
        sa.Column("start_day", sa.String(length=10), nullable=True),
        sa.Column("shares", JSONType, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "warmup_count",
        sa.Column("domain", sa.String(length=255), primary_key=True),
        sa.Column("day", sa.String(length=10), primary_key=True),
        sa.Column("rcpt_domain", sa.String(length=255), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("warmup_count")
    op.drop_table("warmup_plan")
    op.drop_table("relay_state")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("relay")
