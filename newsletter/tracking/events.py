"""Recording opens and clicks: verify, hand off, ingest in bulk.

The public endpoints only verify the token and :func:`submit` the event.  With
Redis configured, ``submit`` appends it to a stream (``XADD``) and the
ingester consumes the stream in batches; without Redis (embedded mode), or
when Redis is unreachable, the event is ingested directly, so no open is lost.

:func:`ingest` is idempotent.  Each event carries a ``uid`` assigned where it
was first seen; the ``UNIQUE (uid)`` constraint stores it once, and only an
event that was actually inserted moves the counters.  Unique counts are
driven by ``UPDATE delivery SET first_open_at = … WHERE first_open_at IS NULL``,
so they stay exact even when the stream delivers an event twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..config import get_settings
from ..db import session_scope
from ..errors import TokenError
from ..models import Delivery, Event, RollupHourly, RollupLink
from ..tokens import verify
from .classify import classify

__all__ = ["STREAM", "ingest", "make_event", "submit"]

log = logging.getLogger(__name__)
STREAM = "events"


def make_event(
    kind: str, token: str, *, link: int | None = None, user_agent: str = "", ip: str = ""
) -> dict[str, Any] | None:
    """Build an event from a request, or None if the token is forged (nothing is recorded)."""
    try:
        t = verify(token, "d")
    except TokenError:
        return None
    return {
        "uid": uuid.uuid4().hex,
        "kind": kind,
        "delivery_id": t.fields[0],
        "link": link,
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "ua": (user_agent or "")[:300],
        "ip": _ip_hash(ip) if ip else "",
    }


def _ip_hash(ip: str) -> str:
    # Only a salted hash of the /24 (IPv4) or /48 (IPv6) is ever kept.
    if ":" in ip:
        prefix = ":".join(ip.split(":")[:3])
    else:
        prefix = ".".join(ip.split(".")[:3])
    salt = get_settings().secret_key.get_secret_value()
    return hashlib.sha256((salt + prefix).encode()).hexdigest()[:16]


def submit(event: dict[str, Any]) -> str:
    """Hand the event to the stream, or ingest it directly. Returns the path taken."""
    cfg = get_settings()
    if cfg.redis_url:
        try:
            from ..redisconn import redis_client

            redis_client().xadd(cfg.redis_prefix + STREAM, {"e": json.dumps(event)})
            return "stream"
        except Exception as exc:  # Redis down: never lose the event
            log.warning("redis unavailable (%s); ingesting directly", exc)
    ingest([event])
    return "direct"


def _insert(session: Session, model: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def ingest(events: list[dict[str, Any]], *, db_url: str | None = None) -> int:
    """Store a batch of events and update rollups in one transaction. Returns how many were new."""
    if not events:
        return 0
    with session_scope(db_url) as s:
        ids = {int(e["delivery_id"]) for e in events}
        info = {
            r.id: r
            for r in s.execute(
                select(Delivery.id, Delivery.send_id, Delivery.sent_at).where(Delivery.id.in_(ids))
            )
        }
        rows = []
        for e in events:
            d = info.get(int(e["delivery_id"]))
            if d is None:
                continue  # a valid token for a delivery that no longer exists
            at = dt.datetime.fromisoformat(e["at"])
            age = (at - d.sent_at).total_seconds() if d.sent_at else None
            cls, rule = classify(e["kind"], e.get("ua"), age)
            rows.append(
                {
                    "uid": e["uid"],
                    "send_id": d.send_id,
                    "delivery_id": d.id,
                    "kind": e["kind"],
                    "link_position": e.get("link"),
                    "occurred_at": at,
                    "cls": cls,
                    "rule": rule,
                    "ip_hash": e.get("ip") or None,
                    "user_agent": e.get("ua") or None,
                }
            )
        if not rows:
            return 0
        inserted = _insert_rows(s, rows)
        fresh = [r for r in rows if r["uid"] in inserted]
        _rollup(s, fresh)
        return len(fresh)


def _insert_rows(s: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert events, skipping uids already stored; returns the uids this call inserted."""
    by_uid = {r["uid"]: r for r in rows}
    stmt = (
        _insert(s, Event)
        .on_conflict_do_nothing(index_elements=["uid"])
        .returning(Event.uid, sort_by_parameter_order=True)
    )
    return set(s.scalars(stmt, list(by_uid.values())).all())


def _rollup(s: Session, rows: list[dict[str, Any]]) -> None:
    hourly: dict[tuple[int, dt.datetime, str, str], list[int]] = defaultdict(lambda: [0, 0])
    links: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for r in sorted(rows, key=lambda r: r["occurred_at"]):
        hour = r["occurred_at"].replace(minute=0, second=0, microsecond=0)
        key = (r["send_id"], hour, r["kind"], r["cls"])
        hourly[key][0] += 1
        first = False
        if r["kind"] == "open" and r["cls"] != "machine":
            first = _first(s, Delivery.first_open_at, r["delivery_id"], r["occurred_at"])
        elif r["kind"] == "click" and r["cls"] != "machine":
            first = _first(s, Delivery.first_click_at, r["delivery_id"], r["occurred_at"])
        if first:
            hourly[key][1] += 1
        if r["kind"] == "click" and r["link_position"] is not None:
            lk = (r["send_id"], r["link_position"])
            links[lk][0] += 1
            if first:
                links[lk][1] += 1
    for (send_id, hour, kind, cls), (total, uniq) in hourly.items():
        ins = _insert(s, RollupHourly).values(
            send_id=send_id, hour=hour, kind=kind, cls=cls, total=total, uniq=uniq
        )
        s.execute(
            ins.on_conflict_do_update(
                index_elements=["send_id", "hour", "kind", "cls"],
                set_={"total": RollupHourly.total + total, "uniq": RollupHourly.uniq + uniq},
            )
        )
    for (send_id, pos), (total, uniq) in links.items():
        ins = _insert(s, RollupLink).values(
            send_id=send_id, link_position=pos, total=total, uniq=uniq
        )
        s.execute(
            ins.on_conflict_do_update(
                index_elements=["send_id", "link_position"],
                set_={"total": RollupLink.total + total, "uniq": RollupLink.uniq + uniq},
            )
        )


def _first(s: Session, column: Any, delivery_id: int, at: dt.datetime) -> bool:
    res = s.execute(
        update(Delivery).where(Delivery.id == delivery_id, column.is_(None)).values({column: at})
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]
