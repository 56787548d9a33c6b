"""console single sign-on

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28

* ``console_user.auth_source`` (``local`` or ``oidc``), ``oidc_issuer`` and
  ``oidc_subject``: an account made by single sign-on is found again by the
  provider's issuer and subject, never by a name or an address;
* ``console_setting``: switches an admin changes at run time (local logins on/off).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("console_user") as batch:
        batch.add_column(
            sa.Column("auth_source", sa.String(length=8), nullable=False, server_default="local")
        )
        batch.add_column(sa.Column("oidc_issuer", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("oidc_subject", sa.String(length=255), nullable=True))
        batch.create_unique_constraint("uq_console_user_oidc", ["oidc_issuer", "oidc_subject"])
    op.create_table(
        "console_setting",
        sa.Column("key", sa.String(length=64), primary_key=True),
        sa.Column("value", sa.String(length=500), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("console_setting")
    with op.batch_alter_table("console_user") as batch:
        batch.drop_constraint("uq_console_user_oidc", type_="unique")
        batch.drop_column("oidc_subject")
        batch.drop_column("oidc_issuer")
        batch.drop_column("auth_source")
