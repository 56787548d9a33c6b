"""what an automatic pause waits for

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-10

* ``send.auto_pause_kind``: set with ``auto_paused_at``: ``relay`` (the relay could not
  be reached: probed by connecting) or ``4xx`` (the relay refused for now: probed with a
  test RCPT). NULL for a pause of any other kind. Rows paused before this revision are
  probed as ``relay``, as they were.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("send") as batch:
        batch.add_column(sa.Column("auto_pause_kind", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("send") as batch:
        batch.drop_column("auto_pause_kind")
