"""publication.zh_hant_table: the OpenCC table of the zh-Hant edition

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28

s2t (the default) converts character by character and keeps mainland
vocabulary; s2hk and s2tw use the Hong Kong and Taiwan character variants.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("publication") as batch:
        batch.add_column(
            sa.Column("zh_hant_table", sa.String(length=8), nullable=False, server_default="s2t")
        )


def downgrade() -> None:
    with op.batch_alter_table("publication") as batch:
        batch.drop_column("zh_hant_table")
