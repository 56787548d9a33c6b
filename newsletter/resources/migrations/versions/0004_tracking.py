"""tracking: segment and link rollups, first-seen keys, audience cache, privacy settings

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rollup_segment",
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(8), nullable=False),
        sa.Column("domain_group", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("cls", sa.String(8), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("uniq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("send_id", "variant", "domain_group", "kind", "cls"),
    )
    op.create_table(
        "rollup_link_cls",
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("link_position", sa.Integer(), nullable=False),
        sa.Column("cls", sa.String(8), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("uniq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("send_id", "link_position", "cls"),
    )
    op.create_table(
        "tracking_first",
        sa.Column("delivery_id", BigId, nullable=False),
        sa.Column("key", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", "key"),
    )
    op.create_table(
        "send_audience",
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(8), nullable=False),
        sa.Column("domain_group", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("send_id", "variant", "domain_group", "state"),
    )
    with op.batch_alter_table("event") as batch:
        batch.create_index("ix_event_delivery_kind", ["delivery_id", "kind"])
        batch.create_index("ix_event_occurred_at", ["occurred_at"])
    with op.batch_alter_table("publication") as batch:
        batch.add_column(
            sa.Column("event_retention_days", sa.Integer(), nullable=False, server_default="180")
        )
        batch.add_column(
            sa.Column("ip_handling", sa.String(8), nullable=False, server_default="hash")
        )


def downgrade() -> None:
    with op.batch_alter_table("publication") as batch:
        batch.drop_column("ip_handling")
        batch.drop_column("event_retention_days")
    with op.batch_alter_table("event") as batch:
        batch.drop_index("ix_event_occurred_at")
        batch.drop_index("ix_event_delivery_kind")
    op.drop_table("send_audience")
    op.drop_table("tracking_first")
    op.drop_table("rollup_link_cls")
    op.drop_table("rollup_segment")
