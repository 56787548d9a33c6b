"""One subscriber's history: what each send did for them, and when they left a list.

Read across delivery, tracking and audience, so it lives above the domains. Every read is
by index: ``delivery`` by ``ix_delivery_subscriber`` (migration 0024), events by
``ix_event_delivery_kind``; the page never scans a send's events.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select

from newsletter.core.db import session_scope
from newsletter.models import Delivery, Event, Issue, MailingList, Send, Subscription

#: The most recent deliveries shown; older ones are summed in ``older``.
LIMIT = 100


def subscriber_history(subscriber_id: int, limit: int = LIMIT) -> dict[str, Any]:
    """Deliveries newest first, with opens and clicks split by who made them."""
    with session_scope() as s:
        rows = s.execute(
            select(
                Delivery.id,
                Delivery.state,
                Delivery.sent_at,
                Delivery.last_code,
                Delivery.last_reply,
                Delivery.variant,
                Send.id.label("send_id"),
                Send.channel,
                Issue.id.label("issue_id"),
                Issue.number,
                Issue.title,
                Issue.kind.label("issue_kind"),
            )
            .join(Send, Send.id == Delivery.send_id)
            .join(Issue, Issue.id == Send.issue_id)
            .where(Delivery.subscriber_id == subscriber_id)
            .order_by(Delivery.id.desc())
            .limit(limit + 1)
        ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        counts: dict[int, dict[str, int]] = {}
        if rows:
            human = case((Event.cls == "machine", 0), else_=1)
            for did, kind, total, people in s.execute(
                select(Event.delivery_id, Event.kind, func.count(), func.sum(human))
                .where(Event.delivery_id.in_([r.id for r in rows]))
                .group_by(Event.delivery_id, Event.kind)
            ):
                c = counts.setdefault(did, {})
                c[kind] = int(total)
                c[kind + "_human"] = int(people or 0)
        left = s.execute(
            select(MailingList.name, Subscription.unsubscribed_at, Subscription.reason)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(
                Subscription.subscriber_id == subscriber_id,
                Subscription.unsubscribed_at.is_not(None),
            )
            .order_by(Subscription.unsubscribed_at.desc())
        ).all()
    deliveries = []
    for r in rows:
        c = counts.get(r.id, {})
        deliveries.append(
            {
                "send_id": r.send_id,
                "issue_id": r.issue_id,
                "issue": f"欢迎邮件 · {r.title}"
                if r.issue_kind == "welcome"
                else f"第 {r.number} 期 · {r.title}",
                "channel": r.channel,
                "variant": r.variant,
                "state": r.state,
                "sent_at": r.sent_at,
                "reply": (r.last_reply or "")[:200] if r.state in ("bounced", "failed") else "",
                "code": r.last_code,
                "opens": c.get("open", 0),
                "opens_human": c.get("open_human", 0),
                "clicks": c.get("click", 0),
                "clicks_human": c.get("click_human", 0),
                "unsubscribed": c.get("unsubscribe", 0) > 0,
                "complained": c.get("complaint", 0) > 0,
            }
        )
    return {
        "deliveries": deliveries,
        "more": more,
        "left": [{"list": n, "at": at, "reason": reason or ""} for n, at, reason in left],
    }
