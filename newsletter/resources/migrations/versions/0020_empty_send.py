"""a send with nobody to reach ends ``empty``

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-10

``send.state`` may be ``empty``: the list had no subscriber the send may reach, nothing
was sent and the issue was not marked sent (before, such a send ended ``failed``).
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_OLD = ("draft", "scheduled", "planning", "sending", "paused", "finished", "cancelled", "failed")
_NEW = (*_OLD, "empty")


def _check(states: tuple[str, ...]) -> str:
    return "state IN (" + ",".join(f"'{s}'" for s in states) + ")"


def upgrade() -> None:
    with op.batch_alter_table("send") as batch:
        batch.drop_constraint("ck_send_state", type_="check")
        batch.create_check_constraint("ck_send_state", _check(_NEW))


def downgrade() -> None:
    op.execute("UPDATE send SET state = 'failed' WHERE state = 'empty'")
    with op.batch_alter_table("send") as batch:
        batch.drop_constraint("ck_send_state", type_="check")
        batch.create_check_constraint("ck_send_state", _check(_OLD))
