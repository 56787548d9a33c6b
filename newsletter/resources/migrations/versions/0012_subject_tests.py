"""subject tests

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28

* ``send.subject_variants`` (2–4 subjects), ``test_share`` (percent),
  ``test_wait_seconds``, ``test_metric`` (``opens`` or ``clicks``),
  ``test_decide_at``, ``test_winner`` and ``test_report`` (the decision);
* ``delivery.subject_idx`` (which subject a reader gets) and
  ``delivery.subject_test`` (in the random test share).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("send") as batch:
        batch.add_column(sa.Column("subject_variants", JSONType, nullable=True))
        batch.add_column(sa.Column("test_share", sa.Integer(), nullable=False, server_default="20"))
        batch.add_column(
            sa.Column("test_wait_seconds", sa.Integer(), nullable=False, server_default="14400")
        )
        batch.add_column(
            sa.Column("test_metric", sa.String(length=8), nullable=False, server_default="opens")
        )
        batch.add_column(sa.Column("test_decide_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("test_winner", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("test_report", JSONType, nullable=True))
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("subject_idx", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("subject_test", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("subject_test")
        batch.drop_column("subject_idx")
    with op.batch_alter_table("send") as batch:
        for c in (
            "test_report",
            "test_winner",
            "test_decide_at",
            "test_metric",
            "test_wait_seconds",
            "test_share",
            "subject_variants",
        ):
            batch.drop_column(c)
