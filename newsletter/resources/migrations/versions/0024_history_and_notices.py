"""deliveries found by subscriber; review notices and a console user's address

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07

The console's per-subscriber history and the erasure of a subscriber read ``delivery``
by ``subscriber_id``; without an index both scan every delivery ever made.

``review_notice``: a person told that an issue waits for their review, was approved or
was sent back; listed in the console and mailed once. ``console_user.email``: where.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_delivery_subscriber", "delivery", ["subscriber_id", "id"])
    with op.batch_alter_table("console_user") as batch:
        batch.add_column(sa.Column("email", sa.String(320), nullable=True))
    op.create_table(
        "review_notice",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "issue_id", sa.Integer, sa.ForeignKey("issue.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False, server_default=""),
        sa.Column("note", sa.String(2000), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("emailed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mail_state", sa.String(16), nullable=False, server_default=""),
        sa.CheckConstraint(
            "kind IN ('ready','approved','sent_back')", name="ck_review_notice_kind"
        ),
    )
    op.create_index("ix_review_notice_recipient", "review_notice", ["recipient", "read_at"])
    op.create_index("ix_review_notice_unmailed", "review_notice", ["emailed_at"])


def downgrade() -> None:
    op.drop_table("review_notice")
    with op.batch_alter_table("console_user") as batch:
        batch.drop_column("email")
    op.drop_index("ix_delivery_subscriber", table_name="delivery")
