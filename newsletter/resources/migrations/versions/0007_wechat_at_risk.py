"""wechat_publication: count publishes whose outcome had to be inferred

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

``at_risk`` counts the times a run re-submitted a draft after an earlier submit
ended with no answer (a timeout or a crash) and WeChat's state could not prove
that the first submit was not applied. It is the WeChat twin of a delivery's
``at_risk``: the number of pushes that could, in the worst case, be duplicates.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("wechat_publication") as batch:
        batch.add_column(sa.Column("at_risk", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("wechat_publication") as batch:
        batch.drop_column("at_risk")
