"""Console services for subscribers: search (by address, name, list and status), one
subscriber's record, and actions on the ticked ones."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from sqlalchemy import exists, select

from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound
from newsletter.models import (
    MailingList,
    Subscriber,
    Subscription,
    Suppression,
)
from newsletter.web.console.auth import Principal, record
from newsletter.web.console.services.common import ConsoleError

__all__ = [
    "BULK_ACTIONS",
    "BULK_LIMIT",
    "SEARCH_STATUSES",
    "VARIANTS",
    "bulk_subscribers",
    "count_search",
    "get_subscriber",
    "search_subscribers",
    "update_subscriber",
]


#: The statuses a subscriber search can filter on (SUB_STATUS codes).
SEARCH_STATUSES = ("active", "unsubscribed", "unconfirmed", "bounced", "complained", "blocked")


def _status_filter(stmt: Any, status: str, list_id: int | None) -> Any:
    """Restrict a subscriber query to those a person would call ``status``."""

    def sub(*states: str) -> Any:
        cond = (Subscription.subscriber_id == Subscriber.id) & Subscription.status.in_(states)
        if list_id:
            cond = cond & (Subscription.list_id == list_id)
        return exists().where(cond)

    suppressed = select(Suppression.email)
    if status == "blocked":
        return stmt.where(Subscriber.status == "blocked")
    if status in ("bounced", "complained"):
        reason = "hard_bounce" if status == "bounced" else "complaint"
        return stmt.where(
            Subscriber.email.in_(select(Suppression.email).where(Suppression.reason == reason))
        )
    live = stmt.where(Subscriber.status == "active")
    if status == "active":
        return live.where(sub("active"), Subscriber.email.not_in(suppressed))
    if status == "unsubscribed":
        return live.where(sub("unsubscribed"), ~sub("active"))
    if status == "unconfirmed":
        return live.where(sub("unconfirmed", "pending"), ~sub("active"))
    return stmt


def _shown_status(row: Subscriber, states: set[str], reason: str | None) -> str:
    """What a person calls this subscriber: blocked, a bounce or complaint, else what their
    subscriptions (on the chosen list, or any) say."""
    if row.status != "active":
        return row.status
    if reason == "hard_bounce":
        return "bounced"
    if reason == "complaint":
        return "complained"
    if "active" in states or not states:
        return "active"
    if states & {"unconfirmed", "pending"}:
        return "unconfirmed"
    return "unsubscribed"


def search_subscribers(
    q: str = "", list_id: int | None = None, limit: int = 50, status: str = ""
) -> list[dict[str, Any]]:
    limit = max(1, min(limit, 200))
    with session_scope() as s:
        stmt = select(Subscriber).where(Subscriber.status != "erased")
        if q:
            # Prefix match on the address uses the unique index; names need a scan, so only
            # short queries with CJK characters search names.
            like = q.strip().lower().replace("%", r"\%").replace("_", r"\_")
            if re.search(r"[\u4e00-\u9fff]", q):
                stmt = stmt.where(Subscriber.name.like(f"%{like}%", escape="\\"))
            else:
                stmt = stmt.where(Subscriber.email.like(f"{like}%", escape="\\"))
        if list_id:
            stmt = stmt.join(
                Subscription,
                (Subscription.subscriber_id == Subscriber.id) & (Subscription.list_id == list_id),
            )
        if status in SEARCH_STATUSES:
            stmt = _status_filter(stmt, status, list_id)
        rows = s.scalars(stmt.order_by(Subscriber.id).limit(limit)).all()
        reasons = dict(
            s.execute(
                select(Suppression.email, Suppression.reason).where(
                    Suppression.email.in_([r.email for r in rows])
                )
            ).all()
        )
        states: dict[int, set[str]] = {}
        subs = select(Subscription.subscriber_id, Subscription.status).where(
            Subscription.subscriber_id.in_([r.id for r in rows])
        )
        if list_id:
            subs = subs.where(Subscription.list_id == list_id)
        for sid, st in s.execute(subs).all():
            states.setdefault(sid, set()).add(st)
        return [
            {
                "id": r.id,
                "email": r.email,
                "name": r.name,
                "variant": r.variant,
                "status": _shown_status(r, states.get(r.id, set()), reasons.get(r.email)),
                "suppressed": r.email in reasons,
                "created_at": r.created_at.isoformat(),
            }
            for r in rows
        ]


def count_search(q: str = "", list_id: int | None = None) -> int:
    """How many subscribers a search covers (what a bulk job over it would act on)."""
    from newsletter.audience import bulk

    with session_scope() as s:
        return bulk.count(s, bulk.selection(s, q=q, list_id=list_id))


VARIANTS = ("zh-Hans", "zh-Hant")


def get_subscriber(subscriber_id: int) -> dict[str, Any]:
    with session_scope() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None or sub.status == "erased":
            raise NotFound(f"订阅者 {subscriber_id} 不存在 / subscriber does not exist")
        subs = s.execute(
            select(MailingList.name, Subscription.status)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscription.subscriber_id == subscriber_id)
            .order_by(MailingList.name)
        ).all()
        return {
            "id": sub.id,
            "email": sub.email,
            "name": sub.name,
            "variant": sub.variant,
            "status": sub.status,
            "created_at": sub.created_at.isoformat(),
            "subscriptions": [{"list": n, "status": st} for n, st in subs],
        }


def update_subscriber(
    actor: Principal, subscriber_id: int, name: str, variant: str, request: Request | None = None
) -> None:
    if variant not in VARIANTS:
        raise ConsoleError("版本只能是 zh-Hans 或 zh-Hant / variant: zh-Hans or zh-Hant")
    name = " ".join((name or "").split())[:200]
    with session_scope() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None or sub.status == "erased":
            raise NotFound(f"订阅者 {subscriber_id} 不存在 / subscriber does not exist")
        before = {"name": sub.name, "variant": sub.variant}
        sub.name, sub.variant = name, variant
        record(
            s,
            actor,
            "subscriber.update",
            f"subscriber:{subscriber_id}",
            request,
            before=before,
            after={"name": name, "variant": variant},
        )


BULK_ACTIONS = ("unsubscribe", "move", "block", "delete")


BULK_LIMIT = 1000


def bulk_subscribers(
    actor: Principal,
    ids: list[int],
    action: str,
    *,
    from_list: int | None = None,
    to_list: int | None = None,
    request: Request | None = None,
) -> int:
    """Apply ``action`` to the ticked subscribers (at most :data:`BULK_LIMIT`, at once);
    returns how many changed.  A whole search or segment runs as a job instead
    (:func:`~.jobs.start_bulk_job`).

    unsubscribe: from ``from_list`` (the search's list) or, without one, from everything
    (which also suppresses the address); move: into ``to_list`` (active), leaving
    ``from_list``; block: the subscriber is blocked and suppressed (manual); delete: erased
    (PIPL/GDPR: only a hashed suppression remains).  One audit entry names them all.
    """
    from newsletter.audience import bulk

    if action not in BULK_ACTIONS:
        raise ConsoleError("未知的批量操作 / unknown bulk action")
    ids = sorted({int(i) for i in ids})
    if not ids:
        raise ConsoleError("请先勾选订阅者 / tick at least one subscriber")
    if len(ids) > BULK_LIMIT:
        raise ConsoleError(f"一次最多 {BULK_LIMIT} 人 / at most {BULK_LIMIT} at a time")
    with session_scope() as s:
        bulk.check(s, action, from_list, to_list)
        rows = bulk.count(s, bulk.selection(s, ids=ids))
        changed = bulk.apply(
            s, ids, action, from_list=from_list, to_list=to_list, actor=actor.username
        )
        record(
            s,
            actor,
            "subscribers.bulk",
            f"{action}:{rows}",
            request,
            bulk=action,
            ids=ids[:200],
            count=rows,
            changed=changed,
            from_list=from_list,
            to_list=to_list,
        )
    return changed
