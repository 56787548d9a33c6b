"""the editor role and the four-eyes rule

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28

* ``console_user.role`` may be ``editor``: edits and approves issues, cannot
  send or change settings;
* ``issue.created_by`` / ``issue.updated_by``: who uploaded and who last edited;
* ``publication.four_eyes`` (on by default): the uploader and the last editor
  cannot approve the issue themselves.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("console_user") as batch:
        batch.drop_constraint("ck_console_user_role", type_="check")
        batch.create_check_constraint(
            "ck_console_user_role", "role IN ('admin','ops','editor','marketing')"
        )
    with op.batch_alter_table("issue") as batch:
        batch.add_column(sa.Column("created_by", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("updated_by", sa.String(length=320), nullable=True))
    with op.batch_alter_table("publication") as batch:
        batch.add_column(
            sa.Column("four_eyes", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("publication") as batch:
        batch.drop_column("four_eyes")
    with op.batch_alter_table("issue") as batch:
        batch.drop_column("updated_by")
        batch.drop_column("created_by")
    with op.batch_alter_table("console_user") as batch:
        batch.drop_constraint("ck_console_user_role", type_="check")
        batch.create_check_constraint("ck_console_user_role", "role IN ('admin','ops','marketing')")
