"""delivery: an index on the claim token, for the rows currently claimed

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-08

A batch finds its rows by its claim token (``claimed_by``) several times: right after
the claim, at every lease renewal, when it hands rows back or releases its claim. With no
index each of those read the whole delivery table, every send's rows since the install
began: 1.3 ms at 20,000 rows, and growing with every issue sent. The index is partial
(only rows with a claim), so it holds a few batches' rows at a time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

_WHERE = sa.text("claimed_by IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_delivery_claimed",
        "delivery",
        ["claimed_by"],
        postgresql_where=_WHERE,
        sqlite_where=_WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_claimed", table_name="delivery")
