"""Lists, subscriptions and suppression: the rules that keep consent intact.

* An unsubscribe takes effect in the same transaction that records it; the
  delivery engine re-checks just before SMTP, so a running send skips the
  person from that moment on.
* Suppression is one row per address and is absolute: every send excludes it
  when planning and again just before handing a message to SMTP.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.audience.addresses import normalise
from newsletter.core.audit import audit
from newsletter.core.errors import NotFound
from newsletter.models import MailingList, Subscriber, Subscription, Suppression, utcnow

__all__ = [
    "erase_subscriber",
    "export_personal_data",
    "set_preferences",
    "get_or_create_list",
    "get_list",
    "is_suppressed",
    "suppress",
    "unsubscribe",
    "unsuppress",
]


def get_list(session: Session, name: str) -> MailingList:
    ml = session.scalar(select(MailingList).where(MailingList.name == name))
    if ml is None:
        raise NotFound(f"list {name!r} does not exist / 列表不存在")
    return ml


def get_or_create_list(session: Session, name: str, description: str = "") -> MailingList:
    ml = session.scalar(select(MailingList).where(MailingList.name == name))
    if ml is None:
        ml = MailingList(name=name, description=description)
        session.add(ml)
        session.flush()
    return ml


def is_suppressed(session: Session, email: str) -> Suppression | None:
    return session.scalar(select(Suppression).where(Suppression.email == email))


def suppress(
    session: Session,
    email: str,
    reason: str,
    *,
    note: str = "",
    delivery_id: int | None = None,
) -> bool:
    """Add ``email`` to the suppression list. Returns False if it was already there."""
    email = normalise(email) if not email.startswith("sha256:") else email
    if is_suppressed(session, email):
        return False
    session.add(Suppression(email=email, reason=reason, note=note, delivery_id=delivery_id))
    session.flush()
    return True


def unsuppress(session: Session, email: str) -> bool:
    row = is_suppressed(session, normalise(email))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def unsubscribe(
    session: Session,
    subscriber_id: int,
    list_id: int | None,
    *,
    reason: str = "unsubscribe",
    when: dt.datetime | None = None,
) -> int:
    """Unsubscribe from one list, or from everything when ``list_id`` is None.

    Unsubscribing from everything also adds an ``unsubscribe_all`` suppression.
    Returns the number of subscriptions changed (0 when already unsubscribed:
    the call is idempotent).
    """
    sub = session.get(Subscriber, subscriber_id)
    if sub is None:
        raise NotFound(f"subscriber {subscriber_id} does not exist")
    when = when or utcnow()
    q = select(Subscription).where(
        Subscription.subscriber_id == subscriber_id, Subscription.status != "unsubscribed"
    )
    if list_id:
        q = q.where(Subscription.list_id == list_id)
    changed = 0
    for s in session.scalars(q):
        s.status = "unsubscribed"
        s.unsubscribed_at = when
        s.reason = reason
        changed += 1
    if not list_id and sub.status != "erased":
        suppress(session, sub.email, "unsubscribe_all", note=reason)
    session.flush()
    if changed:  # tracking: count the unsubscribe against the latest send it came from
        from newsletter.core.events import emit
        from newsletter.tracking.rollups import record_unsubscribe

        data = {
            "subscriber_id": subscriber_id,
            "email": sub.email,
            "list_id": list_id,
            "reason": reason[:64],
        }
        emit(session, "subscriber.unsubscribed", [(data, subscriber_id)])

        record_unsubscribe(session, subscriber_id, list_id, reason=reason, at=when)
    return changed


def export_personal_data(session: Session, subscriber_id: int) -> dict[str, object]:
    """Everything we hold about one subscriber (PIPL/GDPR access request)."""
    from newsletter.models import Delivery, Event

    sub = session.get(Subscriber, subscriber_id)
    if sub is None or sub.status == "erased":
        raise NotFound(f"subscriber {subscriber_id} does not exist")
    subs = [
        {
            "list": name,
            "status": st,
            "since": created.isoformat(),
            "unsubscribed_at": un.isoformat() if un else None,
        }
        for name, st, created, un in session.execute(
            select(
                MailingList.name,
                Subscription.status,
                Subscription.created_at,
                Subscription.unsubscribed_at,
            )
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscription.subscriber_id == subscriber_id)
        )
    ]
    deliveries = [
        {
            "send": d.send_id,
            "state": d.state,
            "sent_at": d.sent_at.isoformat() if d.sent_at else None,
            "opened": bool(d.first_open_at),
            "clicked": bool(d.first_click_at),
        }
        for d in session.scalars(select(Delivery).where(Delivery.subscriber_id == subscriber_id))
    ]
    events = [
        {"kind": k, "at": at.isoformat()}
        for k, at in session.execute(
            select(Event.kind, Event.occurred_at)
            .join(Delivery, Delivery.id == Event.delivery_id)
            .where(Delivery.subscriber_id == subscriber_id)
            .order_by(Event.occurred_at)
        )
    ]
    return {
        "email": sub.email,
        "name": sub.name,
        "variant": sub.variant,
        "attributes": sub.attributes,
        "source": sub.source,
        "created_at": sub.created_at.isoformat(),
        "confirmed_at": sub.confirmed_at.isoformat() if sub.confirmed_at else None,
        "subscriptions": subs,
        "deliveries": deliveries,
        "events": events,
    }


def erase_subscriber(session: Session, subscriber_id: int, *, actor: str) -> None:
    """Erase a subscriber (PIPL/GDPR). Only a hashed suppression entry remains.

    The address becomes a placeholder, name and attributes are cleared, every
    subscription ends, and the subscriber's events lose their IP hash and user
    agent.  Delivery rows stay (without personal data) so send totals still add up.
    """
    from sqlalchemy import delete, update

    from newsletter.audience.addresses import address_hash
    from newsletter.models import Delivery, Event

    sub = session.get(Subscriber, subscriber_id)
    if sub is None:
        raise NotFound(f"subscriber {subscriber_id} does not exist")
    if sub.status == "erased":
        return
    hashed = address_hash(sub.email)
    session.execute(delete(Suppression).where(Suppression.email == sub.email))
    if not is_suppressed(session, hashed):
        session.add(Suppression(email=hashed, reason="unsubscribe_all", note="erased on request"))
    session.execute(
        update(Subscription)
        .where(Subscription.subscriber_id == subscriber_id)
        .values(status="unsubscribed", unsubscribed_at=utcnow(), reason="erased")
    )
    session.execute(
        update(Event)
        .where(
            Event.delivery_id.in_(
                select(Delivery.id).where(Delivery.subscriber_id == subscriber_id)
            )
        )
        .values(ip_hash=None, user_agent=None)
    )
    sub.email = f"erased-{sub.id}@erased.invalid"
    sub.name = ""
    sub.attributes = {}
    sub.source = ""
    sub.status = "erased"
    audit(session, actor, "subscriber.erase", f"subscriber:{subscriber_id}")
    session.flush()


def set_preferences(
    session: Session, subscriber_id: int, *, variant: str | None, lists: dict[int, bool]
) -> None:
    """Change the variant and per-list membership chosen on the preference page."""
    sub = session.get(Subscriber, subscriber_id)
    if sub is None or sub.status != "active":
        raise NotFound(f"subscriber {subscriber_id} does not exist")
    if variant in ("zh-Hans", "zh-Hant"):
        sub.variant = variant
    for list_id, want in lists.items():
        row = session.get(Subscription, (subscriber_id, list_id))
        if row is None:
            continue  # the page only offers lists the person already has a subscription to
        if want and row.status == "unsubscribed":
            row.status = "active"
            row.unsubscribed_at = None
            row.reason = "preferences"
        elif not want and row.status != "unsubscribed":
            row.status = "unsubscribed"
            row.unsubscribed_at = utcnow()
            row.reason = "preferences"
    session.flush()
