"""Console services for review notices and a person's own profile (name, notice address)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import select, update

from newsletter.audience.addresses import normalise
from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError
from newsletter.models import Issue, ReviewNotice, User, utcnow
from newsletter.web.console.auth import Principal, record
from newsletter.web.console.services.common import ConsoleError

__all__ = ["mark_notices_read", "my_notices", "update_profile"]


def my_notices(actor: Principal, limit: int = 10) -> list[dict[str, Any]]:
    """This person's unread notices, newest first, with the issue and who took the step."""
    with session_scope() as s:
        rows = s.execute(
            select(ReviewNotice, Issue.number, Issue.title)
            .join(Issue, Issue.id == ReviewNotice.issue_id)
            .where(ReviewNotice.recipient == actor.username, ReviewNotice.read_at.is_(None))
            .order_by(ReviewNotice.id.desc())
            .limit(limit)
        ).all()
        names = dict(
            s.execute(
                select(User.username, User.display_name).where(
                    User.username.in_({n.actor for n, _, _ in rows})
                )
            ).all()
        )
        return [
            {
                "id": n.id,
                "kind": n.kind,
                "issue_id": n.issue_id,
                "number": number,
                "title": title,
                "by": names.get(n.actor) or n.actor,
                "note": n.note,
                "at": n.created_at,
            }
            for n, number, title in rows
        ]


def mark_notices_read(actor: Principal) -> int:
    """Every unread notice of this person (and only theirs) becomes read."""
    with session_scope() as s:
        res: Any = s.execute(
            update(ReviewNotice)
            .where(ReviewNotice.recipient == actor.username, ReviewNotice.read_at.is_(None))
            .values(read_at=utcnow())
        )
        return int(res.rowcount or 0)


def update_profile(
    actor: Principal, display_name: str, email: str, request: Request | None = None
) -> None:
    """A person's own display name and the address their review notices go to ("" clears
    it). Audited; the session stays valid (neither changes what the person may do)."""
    name = " ".join((display_name or "").split())[:200]
    address = (email or "").strip()
    if address:
        try:
            address = normalise(address)
        except NewsletterError as exc:
            raise ConsoleError(str(exc)) from exc
    with session_scope() as s:
        me = s.get(User, actor.user_id)
        if me is None:
            raise ConsoleError("用户不存在 / user not found")
        me.display_name, me.email = name, address or None
        record(s, actor, "user.profile", me.username, request, email=bool(address))
