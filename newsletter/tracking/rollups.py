"""Ingesting events in bulk and keeping the rollups exact.

:func:`ingest` is idempotent.  Each event carries a ``uid`` assigned where it was first
seen (:mod:`newsletter.tracking.intake`); the ``UNIQUE (uid)`` constraint stores it once,
and only an event that was actually inserted moves the counters (:mod:`.counters`; the
click-pattern rule is :mod:`.bursts`), in the same transaction.  :func:`rebuild`
recomputes a send's rollups with a GROUP BY over its raw events; the two agree exactly
(tests/tracking).

Unsubscribes, bounces and complaints are recorded with :func:`record`, inside the
caller's transaction, with a deterministic uid (one per delivery).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from newsletter.core import clock
from newsletter.core.db import session_scope
from newsletter.models import Delivery, Event, Publication, Send, Subscriber
from newsletter.models.tracking import SendAudience
from newsletter.tracking import counters, data, queries
from newsletter.tracking.bursts import flag_bursts
from newsletter.tracking.classify import classify
from newsletter.tracking.counters import ENGAGEMENT, dialect_insert

__all__ = [
    "domain_group",
    "ingest",
    "ingest_in",
    "rebuild",
    "record",
    "record_unsubscribe",
]

log = logging.getLogger(__name__)
#: Class given to events that are not opens or clicks.
OTHER_CLS = {"unsubscribe": "human", "complaint": "human", "bounce": "unknown"}

_GROUP_OF = {d: g for g, doms in data.DOMAIN_GROUPS.items() for d in doms}


def domain_group(email: str) -> str:
    return _GROUP_OF.get(email.rpartition("@")[2].lower(), data.OTHER_GROUP)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _occurred(at: Any) -> dt.datetime:
    """The event time: microseconds since the epoch (endpoints) or an ISO string (older events)."""
    if isinstance(at, int):
        return _EPOCH + dt.timedelta(microseconds=at)
    out = dt.datetime.fromisoformat(at)
    return out if out.tzinfo is not None else out.replace(tzinfo=dt.UTC)


def ingest(events: list[dict[str, Any]], *, db_url: str | None = None) -> int:
    """Store a batch of events and update rollups in one transaction. Returns how many were new."""
    if not events:
        return 0
    with session_scope(db_url) as s:
        return ingest_in(s, events)


def record(
    session: Session,
    kind: str,
    delivery_id: int,
    *,
    uid: str | None = None,
    rule: str = "",
    at: dt.datetime | None = None,
) -> bool:
    """Record an unsubscribe, bounce or complaint inside the caller's transaction.

    The uid defaults to ``<kind>:<delivery>``: recorded at most once per
    delivery, whichever path (SMTP reply, DSN, ARF, web, mailto) sees it first.
    Never raises: statistics must not break an unsubscribe or a bounce.
    """
    ev = {
        "uid": (uid or f"{kind}:{delivery_id}")[:64],
        "kind": kind,
        "delivery_id": delivery_id,
        "at": (at or clock.now()).isoformat(),
        "cls": OTHER_CLS.get(kind, "human"),
        "rule": rule[:64] or "recorded",
    }
    try:
        if session.get_bind().dialect.name == "postgresql":
            with session.begin_nested():
                return ingest_in(session, [ev]) == 1
        return ingest_in(session, [ev]) == 1
    except Exception:
        log.exception("could not record %s event for delivery %s", kind, delivery_id)
        return False


def record_unsubscribe(
    session: Session,
    subscriber_id: int,
    list_id: int | None,
    *,
    reason: str = "",
    at: dt.datetime | None = None,
) -> bool:
    """Record an unsubscribe against the latest delivery sent to the subscriber.

    Unsubscribe links name the subscriber and the list, not the message, so the
    event goes to the most recent delivery (of a send to that list, when the
    list is known): that is the message the person was reading.
    """
    q = (
        select(Delivery.id)
        .join(Send, Send.id == Delivery.send_id)
        .where(Delivery.subscriber_id == subscriber_id, Delivery.sent_at.is_not(None))
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
        .limit(1)
    )
    if list_id:
        q = q.where(Send.list_id == list_id)
    try:
        did = session.scalar(q)
    except Exception:
        log.exception("could not find the delivery of an unsubscribe")
        return False
    if did is None:
        return False
    return record(session, "unsubscribe", did, rule=reason, at=at)


def _info(s: Session, ids: set[int]) -> dict[int, Any]:
    q = (
        select(
            Delivery.id,
            Delivery.send_id,
            Delivery.sent_at,
            Delivery.variant,
            Delivery.subscriber_id,
            Subscriber.email,
            Send.issue_id,
            Publication.track_opens,
            Publication.track_clicks,
            Publication.ip_handling,
        )
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .join(Send, Send.id == Delivery.send_id)
        .join(Publication, Publication.id == Send.publication_id)
        .where(Delivery.id.in_(sorted(ids)))
    )
    return {r.id: r for r in s.execute(q)}


def ingest_in(s: Session, events: list[dict[str, Any]]) -> int:
    """:func:`ingest` inside an open session (the caller commits)."""
    ids = set()
    for e in events:
        try:
            ids.add(int(e["delivery_id"]))
        except (KeyError, TypeError, ValueError):
            continue
    info = _info(s, ids) if ids else {}
    rows = []
    for e in events:
        try:
            d = info.get(int(e["delivery_id"]))
            if d is None:
                continue  # a valid token for a delivery that no longer exists
            kind = str(e["kind"])
            if (kind == "open" and not d.track_opens) or (kind == "click" and not d.track_clicks):
                continue  # the publication turned this tracking off: record nothing
            at = _occurred(e["at"])
            if kind in ENGAGEMENT:
                age = (at - d.sent_at).total_seconds() if d.sent_at else None
                cls, rule = classify(kind, e.get("ua"), age, e.get("net") or "")
            else:
                cls, rule = e.get("cls") or OTHER_CLS.get(kind, "human"), e.get("rule") or ""
            link = e.get("link") if kind == "click" else None
            rows.append(
                {
                    "uid": str(e["uid"])[:64],
                    "send_id": d.send_id,
                    "delivery_id": d.id,
                    "kind": kind,
                    "link_position": int(link) if link is not None else None,
                    "occurred_at": at,
                    "cls": cls,
                    "rule": rule[:64] or None,
                    "ip_hash": (e.get("ip") or None) if d.ip_handling == "hash" else None,
                    "user_agent": e.get("ua") or None,
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("dropping malformed event %r: %s", e.get("uid"), exc)
    if not rows:
        return 0
    rows = list({r["uid"]: r for r in reversed(rows)}.values())  # one row per uid (the first)
    rows.sort(key=lambda r: r["occurred_at"])
    inserted = _insert_rows(s, rows)
    fresh = [r for r in rows if r["uid"] in inserted]
    if not fresh:
        return 0
    seg = {d.id: (d.variant, domain_group(d.email)) for d in info.values()}
    counters.apply(s, fresh, seg)
    flag_bursts(s, fresh, info, seg)
    _emit_events(s, fresh, info)
    bounced = {r["send_id"] for r in fresh if r["kind"] == "bounce"}
    if bounced:  # the cached delivery-state counts of these sends are stale now
        s.execute(delete(SendAudience).where(SendAudience.send_id.in_(sorted(bounced))))
    return len(fresh)


#: tracking kind → event webhook type (opens and clicks only when a person made them)
_HOOKS = {
    "bounce": "message.bounced",
    "complaint": "message.complained",
    "open": "message.opened",
    "click": "message.clicked",
}


def _emit_events(s: Session, fresh: list[dict[str, Any]], info: dict[int, Any]) -> None:
    """Queue the event webhooks of newly stored events, in this transaction."""
    from newsletter.core.events import emit

    by_type: dict[str, list[tuple[dict[str, Any], int | None]]] = defaultdict(list)
    for r in fresh:
        type_ = _HOOKS.get(r["kind"])
        if type_ is None or (r["kind"] in ENGAGEMENT and r["cls"] != "human"):
            continue
        d = info[r["delivery_id"]]
        data: dict[str, Any] = {
            "event_id": r["uid"],
            "send_id": d.send_id,
            "delivery_id": d.id,
            "subscriber_id": d.subscriber_id,
            "email": d.email,
            "occurred_at": r["occurred_at"].isoformat().replace("+00:00", "Z"),
        }
        if r["kind"] == "click":
            data["link_position"] = r["link_position"]
        if r["kind"] in ("bounce", "complaint"):
            data["rule"] = r["rule"]
        by_type[type_].append((data, d.subscriber_id))
    for type_, items in by_type.items():
        emit(s, type_, items)


def _insert_rows(s: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert events, skipping uids already stored; returns the uids this call inserted."""
    stmt = (
        dialect_insert(s, Event)
        .on_conflict_do_nothing(index_elements=["uid"])
        .returning(Event.uid, sort_by_parameter_order=True)
    )
    return set(s.scalars(stmt, rows).all())


# -- rebuild: the rollups as a GROUP BY over raw events -----------------------------------


def rebuild(session: Session, send_id: int) -> dict[str, int]:
    """Recompute a send's rollups and unique markers from its raw events (one GROUP BY).

    Exact only while every raw event of the send is retained (see :func:`purge`):
    the ingester's incremental rollups and this rebuild agree (tests/tracking). The
    statements, in order, are :func:`newsletter.tracking.queries.rebuild_statements`.
    """
    p = {"s": send_id}
    n = 0
    for name, sql in queries.rebuild_statements(session.get_bind().dialect.name):
        result = session.execute(text(sql), p)
        if name == "segment rollups":
            n = int(result.rowcount or 0)  # type: ignore[attr-defined]
    session.execute(delete(SendAudience).where(SendAudience.send_id == send_id))
    return {"rollup_rows": n}
