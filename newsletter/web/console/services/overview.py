"""Console services for the home page's charts: sends, human opens and list growth, week
by week.  Read from send rows, the hourly rollups and subscription dates (grouped by
day in the database), never from deliveries or raw events, and kept for a minute."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from newsletter.core.caches import process_cache
from newsletter.core.db import session_scope
from newsletter.models import MailingList, RollupHourly, Send, Subscription, utcnow

__all__ = ["CST", "charts_data", "clear_cache"]

CST = dt.timezone(dt.timedelta(hours=8))
WEEKS = 26
TOP_LISTS = 5
_CACHE_SECONDS = 60.0
_cache: dict[str, tuple[float, dict[str, Any]]] = process_cache({})
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _week_of(day: dt.date) -> dt.date:
    """The Monday of ``day``'s week."""
    return day - dt.timedelta(days=day.weekday())


def _as_day(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.astimezone(CST).date() if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def charts_data(weeks: int = WEEKS) -> dict[str, Any]:
    """Week starts (Mondays, UTC+8) and, per week: email recipients of the sends started,
    human opens (unique: first opens of a message; total: every open, separately), and
    the active members of the largest lists at the end of the week."""
    key = f"w{weeks}"
    with _lock:
        hit = _cache.get(key)
        if hit and time.monotonic() - hit[0] < _CACHE_SECONDS:
            return hit[1]
    out = _compute(weeks)
    with _lock:
        _cache[key] = (time.monotonic(), out)
    return out


def _compute(weeks: int) -> dict[str, Any]:
    today = utcnow().astimezone(CST).date()
    first = _week_of(today) - dt.timedelta(weeks=weeks - 1)
    starts = [first + dt.timedelta(weeks=i) for i in range(weeks)]
    since = dt.datetime(first.year, first.month, first.day, tzinfo=CST)
    index = {w: i for i, w in enumerate(starts)}

    def slot(value: Any) -> int | None:
        return index.get(_week_of(_as_day(value)))

    recipients, sends = [0] * weeks, [0] * weeks
    opens_unique, opens_total = [0] * weeks, [0] * weeks
    with session_scope() as s:
        for started, planned in s.execute(
            select(Send.started_at, Send.planned_count).where(
                Send.channel == "email", Send.started_at >= since
            )
        ):
            i = slot(started)
            if i is not None:
                sends[i] += 1
                recipients[i] += int(planned or 0)
        for hour, total, uniq in s.execute(
            select(RollupHourly.hour, func.sum(RollupHourly.total), func.sum(RollupHourly.uniq))
            .where(
                RollupHourly.kind == "open",
                RollupHourly.cls != "machine",
                RollupHourly.hour >= since,
            )
            .group_by(RollupHourly.hour)
        ):
            i = slot(hour)
            if i is not None:
                opens_total[i] += int(total or 0)
                opens_unique[i] += int(uniq or 0)
        growth = _growth(s, starts, since)
    return {
        "weeks": [w.isoformat() for w in starts],
        "sends": sends,
        "recipients": recipients,
        "opens_unique": opens_unique,
        "opens_total": opens_total,
        "lists": growth,
        "has_sends": any(sends),
        "has_opens": any(opens_total) or any(opens_unique),
        "has_lists": any(any(x["values"]) for x in growth),
    }


def _growth(s: Any, starts: list[dt.date], since: dt.datetime) -> list[dict[str, Any]]:
    """Active members at the end of each week, for the largest lists (now)."""
    top = s.execute(
        select(Subscription.list_id, MailingList.name, func.count())
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(Subscription.status == "active")
        .group_by(Subscription.list_id, MailingList.name)
        .order_by(func.count().desc(), MailingList.name)
        .limit(TOP_LISTS)
    ).all()
    if not top:
        return []
    ids = [int(r[0]) for r in top]
    day = func.date(Subscription.created_at)
    joined: dict[int, dict[dt.date, int]] = defaultdict(dict)
    left: dict[int, dict[dt.date, int]] = defaultdict(dict)
    before: dict[int, int] = defaultdict(int)
    counted = Subscription.status.in_(("active", "unsubscribed"))
    for lid, d, n in s.execute(
        select(Subscription.list_id, day, func.count())
        .where(Subscription.list_id.in_(ids), counted, Subscription.created_at >= since)
        .group_by(Subscription.list_id, day)
    ):
        joined[int(lid)][_as_day(d)] = int(n)
    for lid, n in s.execute(
        select(Subscription.list_id, func.count())
        .where(Subscription.list_id.in_(ids), counted, Subscription.created_at < since)
        .group_by(Subscription.list_id)
    ):
        before[int(lid)] += int(n)
    uday = func.date(Subscription.unsubscribed_at)
    for lid, d, n in s.execute(
        select(Subscription.list_id, uday, func.count())
        .where(
            Subscription.list_id.in_(ids),
            Subscription.status == "unsubscribed",
            Subscription.unsubscribed_at >= since,
        )
        .group_by(Subscription.list_id, uday)
    ):
        left[int(lid)][_as_day(d)] = int(n)
    for lid, n in s.execute(
        select(Subscription.list_id, func.count())
        .where(
            Subscription.list_id.in_(ids),
            Subscription.status == "unsubscribed",
            Subscription.unsubscribed_at < since,
        )
        .group_by(Subscription.list_id)
    ):
        before[int(lid)] -= int(n)
    out = []
    for lid, name, _n in top:
        lid = int(lid)
        values, level = [], before[lid]
        for w in starts:
            end = w + dt.timedelta(days=7)
            level += sum(n for d, n in joined[lid].items() if w <= d < end)
            level -= sum(n for d, n in left[lid].items() if w <= d < end)
            values.append(max(0, level))
        out.append({"id": lid, "name": name, "values": values})
    return out
