"""deliveries found by subscriber

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07

The console's per-subscriber history and the erasure of a subscriber read ``delivery``
by ``subscriber_id``; without an index both scan every delivery ever made.
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_delivery_subscriber", "delivery", ["subscriber_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_subscriber", table_name="delivery")
