"""house styles that are learnt: import rules of a publication

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

``import_rule``: a correction an editor made in an import's outline, kept as a
pattern of the publication (never a line number): "lines that start with this
marker are items", or "this exact line is page chrome".  Every later import
into the publication applies its rules.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publication_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("pattern", sa.String(length=200), nullable=False),
        sa.Column("cls", sa.String(length=16), nullable=False),
        sa.Column("example", sa.String(length=200), nullable=False, server_default=""),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["publication_id"], ["publication.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("publication_id", "kind", "pattern", name="uq_import_rule_pattern"),
    )


def downgrade() -> None:
    op.drop_table("import_rule")
