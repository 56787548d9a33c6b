"""review both ways: every version of an issue's source is kept

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07

``issue_version``: the source of every upload or edit that changed it, numbered per
issue, with who and when, so that a reviewer can compare any two versions and an
author can see what was asked of them (the requests themselves are audit entries).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issue_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("source_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issue_id", "version", name="uq_issue_version"),
    )
    # the current source of every existing issue is its version 1
    op.execute(
        "INSERT INTO issue_version (issue_id, version, source_text, source_hash, created_by, "
        "created_at) SELECT id, 1, source_text, source_hash, updated_by, updated_at FROM issue"
    )


def downgrade() -> None:
    op.drop_table("issue_version")
