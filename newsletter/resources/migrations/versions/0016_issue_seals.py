"""sealed issues: what was approved is what goes out

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-09

* ``issue_seal``: one row per approved version of an issue: the seal (a SHA-256 over
  the source, the renderer version and every asset the source references), who
  sealed it and when, and the assets (kind, path as written, SHA-256, size) whose
  bytes were copied into ``var/blobs/sha256/``;
* ``issue.sealed_version``: the version that is approved now (NULL: not approved).

Issues approved before this revision have no seal: sends, test sends and WeChat
refuse them (``seal-missing``) until ``newsletter issue approve`` seals them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "issue_seal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source_hash", sa.String(length=64), nullable=False),
        sa.Column("renderer_version", sa.String(length=32), nullable=False),
        sa.Column("assets", _JSON, nullable=False),
        sa.Column("sealed_by", sa.String(length=320), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issue_id", "version", name="uq_issue_seal_version"),
    )
    with op.batch_alter_table("issue") as batch:
        batch.add_column(sa.Column("sealed_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issue") as batch:
        batch.drop_column("sealed_version")
    op.drop_table("issue_seal")
