"""Bulk actions on subscribers: unsubscribe, move, block, delete.

Two halves, both used by the console:

* :func:`selection` turns a search (address prefix or name, a list) or a saved
  segment into a condition over ``subscriber``; :func:`ids_after` reads it in
  id order, a batch at a time (keyset paging, so a batch never re-reads what an
  earlier one changed);
* :func:`apply` applies one action to one batch of ids with set-based SQL (a
  handful of statements per batch, whatever its size), in the caller's
  transaction, and returns how many subscribers changed.

An operator's bulk unsubscribe is not a reader's unsubscribe: it is not counted
against any send's statistics (the reason on the subscription says ``console``).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, literal, select, true, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from newsletter.audience.segments import compile_segment
from newsletter.audience.service import erase_subscriber
from newsletter.core.errors import NewsletterError, NotFound
from newsletter.models import MailingList, Segment, Subscriber, Subscription, Suppression, utcnow

__all__ = ["ACTIONS", "BulkError", "apply", "check", "count", "ids_after", "selection"]

ACTIONS = ("unsubscribe", "move", "block", "delete")


class BulkError(NewsletterError):
    """A bulk action that cannot run as asked (the message says why)."""


_CJK = re.compile(r"[\u4e00-\u9fff]")


def selection(
    session: Session,
    *,
    q: str = "",
    list_id: int | None = None,
    segment_id: int | None = None,
    ids: list[int] | None = None,
) -> ColumnElement[bool]:
    """The subscribers a bulk action covers, as a condition over ``subscriber``.

    ``ids``: exactly those; ``segment_id``: the segment's active members (of
    ``list_id`` when given); otherwise the console search: an address prefix (or
    a name, for a query with Chinese characters), within ``list_id`` when given.
    Erased subscribers are never selected.
    """
    cond: ColumnElement[bool] = Subscriber.status != "erased"
    if ids is not None:
        return and_(cond, Subscriber.id.in_(sorted({int(i) for i in ids})))
    if segment_id is not None:
        seg = session.get(Segment, segment_id)
        if seg is None:
            raise NotFound(f"分群 {segment_id} 不存在 / segment {segment_id} does not exist")
        cond = and_(
            Subscriber.status == "active",
            compile_segment(seg.definition) if seg.definition else true(),
        )
        if list_id is not None:
            cond = and_(
                cond,
                exists().where(
                    Subscription.subscriber_id == Subscriber.id,
                    Subscription.list_id == list_id,
                    Subscription.status == "active",
                ),
            )
        return cond
    q = (q or "").strip()
    if q:
        like = q.lower().replace("\\", "").replace("%", r"\%").replace("_", r"\_")
        if _CJK.search(q):
            cond = and_(cond, Subscriber.name.like(f"%{like}%", escape="\\"))
        else:
            cond = and_(cond, Subscriber.email.like(f"{like}%", escape="\\"))
    if list_id is not None:
        cond = and_(
            cond,
            exists().where(
                Subscription.subscriber_id == Subscriber.id, Subscription.list_id == list_id
            ),
        )
    return cond


def check(session: Session, action: str, from_list: int | None, to_list: int | None) -> None:
    """Refuse an action that cannot run, before anything is changed."""
    if action not in ACTIONS:
        raise BulkError("未知的批量操作 / unknown bulk action")
    for lid in (from_list, to_list):
        if lid is not None and session.get(MailingList, lid) is None:
            raise NotFound(f"列表 {lid} 不存在 / list {lid} does not exist")
    if action == "move":
        if to_list is None:
            raise BulkError("请选择目标列表 / choose the list to move them to")
        if to_list == from_list:
            raise BulkError("目标列表与当前列表相同 / that is the same list")


def count(session: Session, cond: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count()).select_from(Subscriber).where(cond)) or 0)


def ids_after(session: Session, cond: ColumnElement[bool], after: int | None, n: int) -> list[int]:
    """The next ``n`` selected subscriber ids above ``after``, in id order."""
    stmt = select(Subscriber.id).where(cond)
    if after is not None:
        stmt = stmt.where(Subscriber.id > after)
    return [int(i) for i in session.scalars(stmt.order_by(Subscriber.id).limit(n))]


def _suppress_missing(session: Session, ids: list[int], reason: str, note: str) -> None:
    """Add a suppression for each of these subscribers' addresses not yet suppressed."""
    session.execute(
        insert(Suppression).from_select(
            ["email", "reason", "note", "created_at"],
            select(Subscriber.email, literal(reason), literal(note), literal(utcnow())).where(
                Subscriber.id.in_(ids),
                Subscriber.status != "erased",
                ~exists().where(Suppression.email == Subscriber.email),
            ),
        )
    )


def apply(
    session: Session,
    ids: list[int],
    action: str,
    *,
    from_list: int | None = None,
    to_list: int | None = None,
    actor: str = "console",
) -> int:
    """Apply ``action`` to the subscribers ``ids`` (one batch); returns how many changed.

    unsubscribe: from ``from_list`` or, without one, from every list (which also
    suppresses the address); move: into ``to_list`` (active), leaving
    ``from_list``; block: blocked and suppressed (manual); delete: erased (PIPL/
    GDPR: only a hashed suppression remains).
    """
    if not ids:
        return 0
    now = utcnow()
    live = select(Subscriber.id).where(Subscriber.id.in_(ids), Subscriber.status != "erased")
    if action == "unsubscribe":
        open_subs = and_(
            Subscription.subscriber_id.in_(live), Subscription.status != "unsubscribed"
        )
        if from_list is not None:
            open_subs = and_(open_subs, Subscription.list_id == from_list)
        changed = int(
            session.scalar(
                select(func.count(func.distinct(Subscription.subscriber_id))).where(open_subs)
            )
            or 0
        )
        session.execute(
            update(Subscription)
            .where(open_subs)
            .values(status="unsubscribed", unsubscribed_at=now, reason="console", updated_at=now),
            execution_options={"synchronize_session": False},
        )
        if from_list is None:
            _suppress_missing(session, ids, "unsubscribe_all", "console")
        return changed
    if action == "move":
        assert to_list is not None
        session.execute(
            update(Subscription)
            .where(Subscription.list_id == to_list, Subscription.subscriber_id.in_(live))
            .values(status="active", unsubscribed_at=None, reason=None, updated_at=now),
            execution_options={"synchronize_session": False},
        )
        session.execute(
            insert(Subscription).from_select(
                ["subscriber_id", "list_id", "status", "created_at", "updated_at"],
                select(
                    Subscriber.id, literal(to_list), literal("active"), literal(now), literal(now)
                ).where(
                    Subscriber.id.in_(ids),
                    Subscriber.status != "erased",
                    ~exists().where(
                        Subscription.subscriber_id == Subscriber.id, Subscription.list_id == to_list
                    ),
                ),
            )
        )
        if from_list is not None:
            session.execute(
                delete(Subscription).where(
                    Subscription.list_id == from_list, Subscription.subscriber_id.in_(live)
                ),
                execution_options={"synchronize_session": False},
            )
        return int(session.scalar(select(func.count()).select_from(live.subquery())) or 0)
    if action == "block":
        res: Any = session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(ids), Subscriber.status == "active")
            .values(status="blocked", updated_at=now),
            execution_options={"synchronize_session": False},
        )
        _suppress_missing(session, ids, "manual", "blocked in the console")
        return int(res.rowcount or 0)
    if action == "delete":
        n = 0
        for sid in session.scalars(live):
            erase_subscriber(session, int(sid), actor=actor)
            n += 1
        return n
    raise BulkError("未知的批量操作 / unknown bulk action")
