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

from ..errors import NotFound
from ..models import AuditLog, MailingList, Subscriber, Subscription, Suppression, utcnow
from .addresses import normalise

__all__ = [
    "audit",
    "get_or_create_list",
    "get_list",
    "is_suppressed",
    "suppress",
    "unsubscribe",
    "unsuppress",
]


def audit(session: Session, actor: str, action: str, target: str = "", **detail: object) -> None:
    session.add(AuditLog(actor=actor, action=action, target=target, detail=dict(detail)))


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
    return changed
