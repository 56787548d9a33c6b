"""The click-pattern rule: every link of a message clicked within seconds makes all those
clicks machine clicks, even those an earlier batch counted as human (their contributions
are then recomputed)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from newsletter.models import Delivery, Event, Link
from newsletter.models.tracking import TrackingFirst
from newsletter.tracking import data
from newsletter.tracking.classify import BURST_RULE
from newsletter.tracking.counters import bucket, hour_of, mark_first, upsert

__all__ = ["flag_bursts"]


def _links_of(s: Session, issue_ids: set[int]) -> dict[int, int]:
    out = dict.fromkeys(issue_ids, 0)
    for iid, n in s.execute(
        select(Link.issue_id, func.count())
        .where(Link.issue_id.in_(sorted(issue_ids)))
        .group_by(Link.issue_id)
    ):
        out[iid] = int(n)
    return out


def flag_bursts(
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
        key = (e.send_id, hour_of(e.occurred_at), variant, group, "click", cls)
        ev[key][0] += 1
        counter = f"click:{bucket(cls)}"
        if counter not in seen:
            seen.add(counter)
            ev[key][1] += 1
            if cls != "machine":
                first_human = e.occurred_at
        if e.link_position is not None:
            lkey = (e.send_id, e.link_position, cls)
            lk[lkey][0] += 1
            lc = f"l{e.link_position}:{bucket(cls)}"
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
    upsert(s, ev, lk)
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
    mark_first(s, [(d, k) for k in keys])
