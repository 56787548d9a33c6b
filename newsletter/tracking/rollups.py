"""Ingesting events in bulk and keeping the rollups exact.

:func:`ingest` is idempotent.  Each event carries a ``uid`` assigned where it was first
seen (:mod:`newsletter.tracking.intake`); the ``UNIQUE (uid)`` constraint stores it once,
and only an event that was actually inserted moves the counters.  A unique counter moves
only when a "first" marker is newly set: ``UPDATE delivery SET first_open_at = … WHERE
first_open_at IS NULL`` for human opens and clicks, an insert into ``tracking_first`` for
everything else.  Rollups are updated in the same transaction.  :func:`rebuild`
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

from sqlalchemy import bindparam, case, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.core import clock
from newsletter.core.db import session_scope
from newsletter.models import Delivery, Event, Link, Publication, RollupHourly, Send, Subscriber
from newsletter.models.tracking import RollupLinkCls, RollupSegment, SendAudience, TrackingFirst
from newsletter.tracking import data, queries
from newsletter.tracking.classify import BURST_RULE, classify

__all__ = [
    "domain_group",
    "ingest",
    "ingest_in",
    "rebuild",
    "record",
    "record_unsubscribe",
]

log = logging.getLogger(__name__)
ENGAGEMENT = ("open", "click")
#: Class given to events that are not opens or clicks.
OTHER_CLS = {"unsubscribe": "human", "complaint": "human", "bounce": "unknown"}

_GROUP_OF = {d: g for g, doms in data.DOMAIN_GROUPS.items() for d in doms}


def domain_group(email: str) -> str:
    return _GROUP_OF.get(email.rpartition("@")[2].lower(), data.OTHER_GROUP)


# -- at the endpoint ------------------------------------------------------------


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _occurred(at: Any) -> dt.datetime:
    """The event time: microseconds since the epoch (endpoints) or an ISO string (older events)."""
    if isinstance(at, int):
        return _EPOCH + dt.timedelta(microseconds=at)
    out = dt.datetime.fromisoformat(at)
    return out if out.tzinfo is not None else out.replace(tzinfo=dt.UTC)


# -- the local spool (last resort) -------------------------------------------------


# -- ingestion ---------------------------------------------------------------------


def _insert(session: Session, model: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def _hour(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


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
    _apply(s, fresh, seg)
    _bursts(s, fresh, info, seg)
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
        _insert(s, Event)
        .on_conflict_do_nothing(index_elements=["uid"])
        .returning(Event.uid, sort_by_parameter_order=True)
    )
    return set(s.scalars(stmt, rows).all())


def _bucket(cls: str) -> str:
    return "m" if cls == "machine" else "h"


def _first_key(kind: str, cls: str) -> str | None:
    """The tracking_first key of a (kind, class) unique counter; None = a delivery column."""
    if kind in ENGAGEMENT and cls != "machine":
        return None
    return f"{kind[:12]}:{_bucket(cls)}"


def _set_first(s: Session, column: Any, firsts: dict[int, dt.datetime]) -> set[int]:
    """Set ``column`` where it is NULL for these deliveries; returns the ids it was set for."""
    if not firsts:
        return set()
    ids = sorted(firsts)
    if s.get_bind().dialect.name == "postgresql":
        # Take the row locks in id order first: two ingesters updating overlapping sets
        # in whatever order the plan visits them would deadlock.
        s.execute(
            select(Delivery.id).where(Delivery.id.in_(ids)).order_by(Delivery.id).with_for_update()
        )
    value = case(
        {i: bindparam(f"f{n}", firsts[i], type_=column.type) for n, i in enumerate(ids)},
        value=Delivery.id,
    )
    res = s.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), column.is_(None))
        .values({column: value})
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return set(res.scalars().all())


def _mark_first(s: Session, keys: list[tuple[int, str]]) -> set[tuple[int, str]]:
    if not keys:
        return set()
    stmt = (
        _insert(s, TrackingFirst)
        .on_conflict_do_nothing(index_elements=["delivery_id", "key"])
        .returning(TrackingFirst.delivery_id, TrackingFirst.key, sort_by_parameter_order=True)
    )
    params = [{"delivery_id": d, "key": k} for d, k in sorted(keys)]
    return {(int(d), str(k)) for d, k in s.execute(stmt, params)}


def _apply(s: Session, rows: list[dict[str, Any]], seg: dict[int, tuple[str, str]]) -> None:
    """Move unique markers and add the rows' contributions to the rollups."""
    # 1. Which row is the first of its delivery for each unique counter (in this batch)?
    first_row: dict[tuple[int, str], int] = {}  # (delivery, counter) → row index
    for i, r in enumerate(rows):
        d, kind, cls = r["delivery_id"], r["kind"], r["cls"]
        key = _first_key(kind, cls) or f"{kind}:col"
        first_row.setdefault((d, key), i)
        if kind == "click" and r["link_position"] is not None:
            first_row.setdefault((d, f"l{r['link_position']}:{_bucket(cls)}"), i)
    opens = {d: rows[i]["occurred_at"] for (d, k), i in first_row.items() if k == "open:col"}
    clicks = {d: rows[i]["occurred_at"] for (d, k), i in first_row.items() if k == "click:col"}
    moved: set[tuple[int, str]] = set()
    moved |= {(d, "open:col") for d in _set_first(s, Delivery.first_open_at, opens)}
    moved |= {(d, "click:col") for d in _set_first(s, Delivery.first_click_at, clicks)}
    moved |= _mark_first(s, [k for k in first_row if not k[1].endswith(":col")])
    uniq_rows: dict[int, set[str]] = defaultdict(set)
    for k in moved:
        uniq_rows[first_row[k]].add(k[1])
    # 2. Rollup deltas.
    ev: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    lk: dict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0, 0])
    for i, r in enumerate(rows):
        variant, group = seg[r["delivery_id"]]
        ekey = (r["send_id"], _hour(r["occurred_at"]), variant, group, r["kind"], r["cls"])
        ev[ekey][0] += 1
        marks = uniq_rows.get(i, set())
        if (_first_key(r["kind"], r["cls"]) or f"{r['kind']}:col") in marks:
            ev[ekey][1] += 1
        if r["kind"] == "click" and r["link_position"] is not None:
            lkey = (r["send_id"], r["link_position"], r["cls"])
            lk[lkey][0] += 1
            if f"l{r['link_position']}:{_bucket(r['cls'])}" in marks:
                lk[lkey][1] += 1
    _upsert(s, ev, lk)


def _upsert(
    s: Session,
    ev: dict[tuple[Any, ...], list[int]],
    lk: dict[tuple[int, int, str], list[int]],
) -> None:
    ev = {k: v for k, v in ev.items() if v != [0, 0]}
    lk = {k: v for k, v in lk.items() if v != [0, 0]}
    seg: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    hr: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for k, (t, u) in ev.items():  # k = (send, hour, variant, group, kind, class)
        for acc, key in ((seg, (k[0], k[2], k[3], k[4], k[5])), (hr, (k[0], k[1], k[4], k[5]))):
            acc[key][0] += t
            acc[key][1] += u
    seg = {k: v for k, v in seg.items() if v != [0, 0]}
    hr = {k: v for k, v in hr.items() if v != [0, 0]}
    if seg:
        stmt = _insert(s, RollupSegment)
        stmt = stmt.on_conflict_do_update(
            index_elements=["send_id", "variant", "domain_group", "kind", "cls"],
            set_={
                "total": RollupSegment.total + stmt.excluded.total,
                "uniq": RollupSegment.uniq + stmt.excluded.uniq,
            },
        )
        s.execute(
            stmt,
            [
                {"send_id": k[0], "variant": k[1], "domain_group": k[2], "kind": k[3],
                 "cls": k[4], "total": v[0], "uniq": v[1]}
                for k, v in sorted(seg.items())
            ],
        )  # fmt: skip
    if hr:
        hstmt = _insert(s, RollupHourly)
        hstmt = hstmt.on_conflict_do_update(
            index_elements=["send_id", "hour", "kind", "cls"],
            set_={
                "total": RollupHourly.total + hstmt.excluded.total,
                "uniq": RollupHourly.uniq + hstmt.excluded.uniq,
            },
        )
        s.execute(
            hstmt,
            [
                {"send_id": k[0], "hour": k[1], "kind": k[2], "cls": k[3], "total": v[0],
                 "uniq": v[1]}
                for k, v in sorted(hr.items())
            ],
        )  # fmt: skip
    if lk:
        lstmt = _insert(s, RollupLinkCls)
        lstmt = lstmt.on_conflict_do_update(
            index_elements=["send_id", "link_position", "cls"],
            set_={
                "total": RollupLinkCls.total + lstmt.excluded.total,
                "uniq": RollupLinkCls.uniq + lstmt.excluded.uniq,
            },
        )
        s.execute(
            lstmt,
            [
                {"send_id": k[0], "link_position": k[1], "cls": k[2], "total": v[0], "uniq": v[1]}
                for k, v in sorted(lk.items())
            ],
        )


# -- the click-pattern rule ------------------------------------------------------------


def _links_of(s: Session, issue_ids: set[int]) -> dict[int, int]:
    out = dict.fromkeys(issue_ids, 0)
    for iid, n in s.execute(
        select(Link.issue_id, func.count())
        .where(Link.issue_id.in_(sorted(issue_ids)))
        .group_by(Link.issue_id)
    ):
        out[iid] = int(n)
    return out


def _bursts(
    s: Session, rows: list[dict[str, Any]], info: dict[int, Any], seg: dict[int, tuple[str, str]]
) -> None:
    """Every link of a message clicked within seconds → all those clicks are machine.

    The earlier clicks of the burst may already be counted as human (other
    batches); the delivery's click contributions are then recomputed: the old
    ones subtracted, the new ones added, and its first-click markers reset.
    """
    cand = {r["delivery_id"] for r in rows if r["kind"] == "click" and r["cls"] != "machine"}
    if not cand:
        return
    nlinks = _links_of(s, {info[d].issue_id for d in cand})
    cand = {d for d in cand if nlinks[info[d].issue_id] >= data.BURST_MIN_LINKS}
    if not cand:
        return
    clicks: dict[int, list[Any]] = defaultdict(list)
    for row in s.execute(
        select(Event.id, Event.delivery_id, Event.send_id, Event.link_position, Event.occurred_at,
               Event.cls, Event.rule)
        .where(Event.delivery_id.in_(sorted(cand)), Event.kind == "click")
        .order_by(Event.delivery_id, Event.id)
    ):  # fmt: skip
        clicks[row.delivery_id].append(row)
    window = dt.timedelta(seconds=data.BURST_SECONDS)
    for d, evs in clicks.items():
        need = nlinks[info[d].issue_id]
        by_time = sorted(
            (e for e in evs if e.link_position is not None), key=lambda e: e.occurred_at
        )
        burst: set[int] = set()
        j = 0
        for i in range(len(by_time)):
            while by_time[i].occurred_at - by_time[j].occurred_at > window:
                j += 1
            win = by_time[j : i + 1]
            if len({e.link_position for e in win}) >= need:
                burst |= {e.id for e in win}
        flip = {e.id for e in evs if e.id in burst and e.cls != "machine"}
        if flip:
            _recompute_clicks(s, d, evs, flip, seg[d])


def _contrib(
    evs: list[Any], cls_of: dict[int, str], variant: str, group: str
) -> tuple[dict[tuple[Any, ...], list[int]], dict[tuple[int, int, str], list[int]], list[str], Any]:
    ev: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    lk: dict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0, 0])
    seen: set[str] = set()
    first_human = None
    for e in evs:  # id order = ingestion order
        cls = cls_of[e.id]
        key = (e.send_id, _hour(e.occurred_at), variant, group, "click", cls)
        ev[key][0] += 1
        counter = f"click:{_bucket(cls)}"
        if counter not in seen:
            seen.add(counter)
            ev[key][1] += 1
            if cls != "machine":
                first_human = e.occurred_at
        if e.link_position is not None:
            lkey = (e.send_id, e.link_position, cls)
            lk[lkey][0] += 1
            lc = f"l{e.link_position}:{_bucket(cls)}"
            if lc not in seen:
                seen.add(lc)
                lk[lkey][1] += 1
    keys = sorted(k for k in seen if k != "click:h")
    return ev, lk, keys, first_human


def _recompute_clicks(
    s: Session, d: int, evs: list[Any], flip: set[int], seg: tuple[str, str]
) -> None:
    old_cls = {e.id: e.cls for e in evs}
    new_cls = {i: ("machine" if i in flip else c) for i, c in old_cls.items()}
    old_ev, old_lk, _k, _f = _contrib(evs, old_cls, *seg)
    new_ev, new_lk, keys, first_human = _contrib(evs, new_cls, *seg)
    ev: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    lk: dict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0, 0])
    for src, sign in ((new_ev, 1), (old_ev, -1)):
        for k, (t, u) in src.items():
            ev[k][0] += sign * t
            ev[k][1] += sign * u
    for lsrc, sign in ((new_lk, 1), (old_lk, -1)):
        for lkey, (t, u) in lsrc.items():
            lk[lkey][0] += sign * t
            lk[lkey][1] += sign * u
    _upsert(s, ev, lk)
    s.execute(
        update(Event)
        .where(Event.id.in_(sorted(flip)))
        .values(cls="machine", rule=BURST_RULE)
        .execution_options(synchronize_session=False)
    )
    s.execute(
        update(Delivery)
        .where(Delivery.id == d)
        .values(first_click_at=first_human)
        .execution_options(synchronize_session=False)
    )
    s.execute(
        delete(TrackingFirst).where(
            TrackingFirst.delivery_id == d,
            (TrackingFirst.key == "click:m") | TrackingFirst.key.like("l%"),
        )
    )
    _mark_first(s, [(d, k) for k in keys])


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
