"""Unique markers and rollup counters, moved only by newly stored events.

A unique counter moves only when a "first" marker is newly set: ``UPDATE delivery SET
first_open_at = … WHERE first_open_at IS NULL`` for human opens and clicks, an insert
into ``tracking_first`` for everything else. The rollup rows are upserted with the
deltas, in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.models import Delivery, RollupHourly
from newsletter.models.tracking import RollupLinkCls, RollupSegment, TrackingFirst

__all__ = ["ENGAGEMENT", "apply", "bucket", "dialect_insert", "hour_of", "mark_first", "upsert"]

ENGAGEMENT = ("open", "click")


def dialect_insert(session: Session, model: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def hour_of(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def bucket(cls: str) -> str:
    return "m" if cls == "machine" else "h"


def first_key(kind: str, cls: str) -> str | None:
    """The tracking_first key of a (kind, class) unique counter; None = a delivery column."""
    if kind in ENGAGEMENT and cls != "machine":
        return None
    return f"{kind[:12]}:{bucket(cls)}"


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


def mark_first(s: Session, keys: list[tuple[int, str]]) -> set[tuple[int, str]]:
    if not keys:
        return set()
    stmt = (
        dialect_insert(s, TrackingFirst)
        .on_conflict_do_nothing(index_elements=["delivery_id", "key"])
        .returning(TrackingFirst.delivery_id, TrackingFirst.key, sort_by_parameter_order=True)
    )
    params = [{"delivery_id": d, "key": k} for d, k in sorted(keys)]
    return {(int(d), str(k)) for d, k in s.execute(stmt, params)}


def apply(s: Session, rows: list[dict[str, Any]], seg: dict[int, tuple[str, str]]) -> None:
    """Move unique markers and add the rows' contributions to the rollups."""
    # 1. Which row is the first of its delivery for each unique counter (in this batch)?
    first_row: dict[tuple[int, str], int] = {}  # (delivery, counter) → row index
    for i, r in enumerate(rows):
        d, kind, cls = r["delivery_id"], r["kind"], r["cls"]
        key = first_key(kind, cls) or f"{kind}:col"
        first_row.setdefault((d, key), i)
        if kind == "click" and r["link_position"] is not None:
            first_row.setdefault((d, f"l{r['link_position']}:{bucket(cls)}"), i)
    opens = {d: rows[i]["occurred_at"] for (d, k), i in first_row.items() if k == "open:col"}
    clicks = {d: rows[i]["occurred_at"] for (d, k), i in first_row.items() if k == "click:col"}
    moved: set[tuple[int, str]] = set()
    moved |= {(d, "open:col") for d in _set_first(s, Delivery.first_open_at, opens)}
    moved |= {(d, "click:col") for d in _set_first(s, Delivery.first_click_at, clicks)}
    moved |= mark_first(s, [k for k in first_row if not k[1].endswith(":col")])
    uniq_rows: dict[int, set[str]] = defaultdict(set)
    for k in moved:
        uniq_rows[first_row[k]].add(k[1])
    # 2. Rollup deltas.
    ev: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    lk: dict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0, 0])
    for i, r in enumerate(rows):
        variant, group = seg[r["delivery_id"]]
        ekey = (r["send_id"], hour_of(r["occurred_at"]), variant, group, r["kind"], r["cls"])
        ev[ekey][0] += 1
        marks = uniq_rows.get(i, set())
        if (first_key(r["kind"], r["cls"]) or f"{r['kind']}:col") in marks:
            ev[ekey][1] += 1
        if r["kind"] == "click" and r["link_position"] is not None:
            lkey = (r["send_id"], r["link_position"], r["cls"])
            lk[lkey][0] += 1
            if f"l{r['link_position']}:{bucket(r['cls'])}" in marks:
                lk[lkey][1] += 1
    upsert(s, ev, lk)


def upsert(
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
        stmt = dialect_insert(s, RollupSegment)
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
        hstmt = dialect_insert(s, RollupHourly)
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
        lstmt = dialect_insert(s, RollupLinkCls)
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
