"""the public archive's search table

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28

* ``archive_entry``: one plain-text row per issue and per item, per variant;
* on PostgreSQL, ``pg_trgm`` GIN indexes on its title and body, so that
  ``ILIKE '%…%'`` (a substring anywhere, which is what a Chinese search needs:
  the default text-search parser does not segment Chinese) uses an index.
  ``pg_trgm`` is a trusted extension (PostgreSQL 13+): the database owner may
  create it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_entry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "issue_id", sa.Integer(), sa.ForeignKey("issue.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("variant", sa.String(length=8), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("anchor", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_index("ix_archive_entry_issue", "archive_entry", ["issue_id", "variant"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_archive_entry_body_trgm ON archive_entry USING gin (body gin_trgm_ops)"
        )
        op.execute(
            "CREATE INDEX ix_archive_entry_title_trgm ON archive_entry "
            "USING gin (title gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_archive_entry_title_trgm")
        op.execute("DROP INDEX IF EXISTS ix_archive_entry_body_trgm")
    op.drop_index("ix_archive_entry_issue", table_name="archive_entry")
    op.drop_table("archive_entry")
