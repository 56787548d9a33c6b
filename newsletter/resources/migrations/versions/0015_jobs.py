"""background jobs: subscriber imports and bulk actions run by a worker

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28

* ``job``: one row per import or bulk action handed to a worker: kind, state,
  who started it, its parameters, rows done of total (written with every
  batch), the last subscriber id a bulk job has finished (to resume it), the
  result or the error, and a heartbeat (an old heartbeat means the worker died).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("file", sa.String(length=500), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("changed", sa.BigInteger(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=True),
        sa.Column("result", _JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('import','bulk')", name="ck_job_kind"),
        sa.CheckConstraint(
            "state IN ('queued','running','done','failed','interrupted')", name="ck_job_state"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_job_created", "job", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_job_created", table_name="job")
    op.drop_table("job")
