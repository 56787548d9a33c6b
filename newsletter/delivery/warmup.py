"""Warm-up: a new sending domain ramps up over days instead of sending everything at once.

A *plan* belongs to a sending (From) domain: a schedule of messages per day
(day 0, day 1, …; the last value holds after the end), the first day of the
ramp, and optional caps per recipient domain as a share of a day's allowance
(``{"gmail.com": 0.3}``). Plans come from ``warmup_domains`` in the settings
and from `newsletter warmup set` (stored in ``warmup_plan``, which wins). A
domain without a plan is not warmed up.

Two mechanisms work together:

* **Planning** (:func:`plan_send`, when a send starts): the send's queued
  deliveries are ranked by engagement (human opens and clicks of earlier
  sends, most engaged first) and given out day by day within the allowance
  left for each day and each recipient domain. Those beyond today get a
  ``next_attempt_at`` at the start of their day, which the claim condition
  already honours: they stay ``queued`` until then.
* **The cap** (:func:`reserve`, per message before it is marked ``sending``):
  an atomic conditional increment of the day's counters in ``warmup_count``,
  in the same transaction as the mark, so that several sends of one domain,
  or several workers, can never exceed the day's allowance together. A
  delivery refused by it waits for the next day.

Days begin at midnight in ``warmup_timezone``. The clock is
:func:`newsletter.core.clock.now`, so tests simulate days.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.core import clock
from newsletter.core.config import get_settings
from newsletter.core.errors import ConfigError
from newsletter.models import (
    Delivery,
    Event,
    Publication,
    Send,
    Subscriber,
    WarmupCount,
    WarmupPlan,
)

__all__ = [
    "Plan",
    "active_plan",
    "allowance",
    "day_of",
    "day_start",
    "plan_send",
    "reserve",
    "unreserve",
]

ALL = "*"
#: Opens and clicks of this many days count towards engagement.
ENGAGEMENT_DAYS = 365


@dataclass(slots=True)
class Plan:
    domain: str
    schedule: list[int]
    start_day: dt.date | None = None
    shares: dict[str, float] = field(default_factory=dict)
    source: str = "settings"

    def day_index(self, day: dt.date) -> int:
        start = self.start_day or day
        return max((day - start).days, 0)

    def cap(self, day: dt.date) -> int:
        n = self.day_index(day)
        return int(self.schedule[min(n, len(self.schedule) - 1)])

    def domain_cap(self, day: dt.date, rcpt_domain: str) -> int | None:
        share = self.shares.get(rcpt_domain)
        if share is None:
            return None
        return max(1, math.floor(share * self.cap(day)))

    def public(self, today: dt.date) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "schedule": self.schedule,
            "start_day": self.start_day.isoformat() if self.start_day else None,
            "day": self.day_index(today),
            "today_allowance": self.cap(today),
            "shares": self.shares,
            "source": self.source,
        }


def _tz() -> ZoneInfo:
    return ZoneInfo(get_settings().warmup_timezone)


def day_of(when: dt.datetime) -> dt.date:
    """The warm-up day (a local date) of an instant."""
    return when.astimezone(_tz()).date()


def day_start(day: dt.date) -> dt.datetime:
    """The UTC instant a local day begins."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=_tz()).astimezone(dt.UTC)


def validate(
    schedule: Any, shares: Any, start: Any
) -> tuple[list[int], dict[str, float], dt.date | None]:
    """Check a plan's parts; raises ConfigError with one line (en / 中文)."""
    if (
        not isinstance(schedule, list)
        or not schedule
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in schedule)
    ):
        raise ConfigError(
            "warm-up schedule: a non-empty list of positive whole numbers (messages per day) "
            "/ 预热计划：每日发送量须为正整数列表"
        )
    if not isinstance(shares, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and 0 < v <= 1 for k, v in shares.items()
    ):
        raise ConfigError(
            "warm-up shares: recipient domain = a share between 0 and 1, e.g. gmail.com=0.3 "
            "/ 预热计划：收件域名占比须在 0 到 1 之间"
        )
    day = None
    if start not in (None, ""):
        try:
            day = dt.date.fromisoformat(str(start))
        except ValueError:
            raise ConfigError(
                "warm-up start: a date such as 2026-12-01 / 预热计划：开始日期格式应为 2026-12-01"
            ) from None
    return [int(n) for n in schedule], {k.lower(): float(v) for k, v in shares.items()}, day


def check_settings() -> None:
    """Validate ``warmup_schedule`` and ``warmup_domains``; ConfigError (one line) if bad."""
    cfg = get_settings()
    validate(list(cfg.warmup_schedule), {}, None)
    for domain, body in (cfg.warmup_domains or {}).items():
        if not isinstance(body, dict):
            raise ConfigError(
                f"NEWSLETTER_WARMUP_DOMAINS: {domain!r} must map to an object "
                "/ 预热计划：每个域名对应一个对象"
            )
        validate(body.get("schedule", [1]), body.get("shares", {}), body.get("start"))


def plans(s: Session) -> dict[str, Plan]:
    """Every warm-up plan in force, by sending domain."""
    cfg = get_settings()
    out: dict[str, Plan] = {}
    for domain, body in (cfg.warmup_domains or {}).items():
        body = body if isinstance(body, dict) else {}
        schedule, shares, start = validate(
            body.get("schedule", list(cfg.warmup_schedule)),
            body.get("shares", {}),
            body.get("start"),
        )
        out[domain.lower()] = Plan(domain.lower(), schedule, start, shares, "settings")
    for row in s.scalars(select(WarmupPlan)):
        if not row.enabled:
            out.pop(row.domain, None)
            continue
        base = out.get(row.domain)
        schedule, shares, start = validate(
            row.schedule or (base.schedule if base else list(cfg.warmup_schedule)),
            row.shares if row.shares is not None else (base.shares if base else {}),
            row.start_day or (base.start_day.isoformat() if base and base.start_day else None),
        )
        out[row.domain] = Plan(row.domain, schedule, start, shares, "console/cli")
    return out


def active_plan(s: Session, domain: str) -> Plan | None:
    """The plan of a sending domain, with its first day fixed at first use; None: off."""
    plan = plans(s).get(domain.lower())
    if plan is None:
        return None
    if plan.start_day is None:
        today = day_of(clock.now())
        _upsert_plan(s, plan.domain, start_day=today.isoformat())
        plan.start_day = today
    return plan


def _insert(s: Session, model: Any) -> Any:
    return (postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert)(
        model
    )


def _upsert_plan(s: Session, domain: str, **values: Any) -> None:
    stmt = _insert(s, WarmupPlan).values(domain=domain, **values)
    s.execute(stmt.on_conflict_do_update(index_elements=["domain"], set_=values))


def set_plan(
    s: Session,
    domain: str,
    *,
    schedule: list[int] | None = None,
    shares: dict[str, float] | None = None,
    start: str | None = None,
    enabled: bool = True,
) -> None:
    """Store a plan for ``domain`` (what is not given keeps the settings' or earlier value)."""
    domain = domain.strip().lower()
    if not domain or "@" in domain or " " in domain:
        raise ConfigError(f"warm-up: {domain!r} is not a domain / 预热计划：域名无效")
    validate(schedule or [1], shares or {}, start)
    values: dict[str, Any] = {"enabled": enabled}
    if schedule is not None:
        values["schedule"] = schedule
    if shares is not None:
        values["shares"] = shares
    if start is not None:
        values["start_day"] = start or None
    values["updated_at"] = clock.now()
    _upsert_plan(s, domain, **values)


def used(s: Session, domain: str, day: dt.date) -> dict[str, int]:
    """Counts of ``day``: '*' (all) and per recipient domain."""
    rows = s.execute(
        select(WarmupCount.rcpt_domain, WarmupCount.count).where(
            WarmupCount.domain == domain, WarmupCount.day == day.isoformat()
        )
    ).all()
    return {str(k): int(v) for k, v in rows}


def allowance(s: Session, domain: str) -> dict[str, Any] | None:
    """Today's allowance of a sending domain: plan, cap, used, left (None: no warm-up)."""
    plan = plans(s).get(domain.lower())
    if plan is None:
        return None
    today = day_of(clock.now())
    counts = used(s, plan.domain, today)
    cap = plan.cap(today)
    return {
        **plan.public(today),
        "today": today.isoformat(),
        "used": counts.get(ALL, 0),
        "left": max(cap - counts.get(ALL, 0), 0),
        "by_domain": {k: v for k, v in counts.items() if k != ALL},
        "next_days": [
            {
                "day": (today + dt.timedelta(days=i)).isoformat(),
                "allowance": plan.cap(today + dt.timedelta(days=i)),
            }
            for i in range(1, 8)
        ],
    }


def _bump(s: Session, domain: str, day: str, rcpt: str, cap: int | None) -> bool:
    """Count one message in (domain, day, rcpt) if below ``cap``: one upsert statement."""
    stmt = (
        _insert(s, WarmupCount)
        .values(domain=domain, day=day, rcpt_domain=rcpt, count=1)
        .on_conflict_do_update(
            index_elements=["domain", "day", "rcpt_domain"],
            set_={"count": WarmupCount.count + 1},
            where=(WarmupCount.count < cap) if cap is not None else None,
        )
        .returning(WarmupCount.count)
    )
    return s.execute(stmt).first() is not None


def reserve(s: Session, plan: Plan, rcpt_domain: str, now: dt.datetime) -> bool:
    """Take one message of today's allowance (and of the recipient domain's share).

    False: today is used up; the caller leaves the delivery for tomorrow. Runs in
    the caller's transaction, which commits it together with the ``sending`` mark.
    """
    day = day_of(now)
    key = day.isoformat()
    if not _bump(s, plan.domain, key, ALL, plan.cap(day)):
        return False
    dcap = plan.domain_cap(day, rcpt_domain)
    if dcap is not None and not _bump(s, plan.domain, key, rcpt_domain, dcap):
        _unbump(s, plan.domain, key, ALL)
        return False
    return True  # recipient domains without a cap are not counted: one statement less


def _unbump(s: Session, domain: str, day: str, rcpt: str) -> None:
    s.execute(
        update(WarmupCount)
        .where(
            WarmupCount.domain == domain,
            WarmupCount.day == day,
            WarmupCount.rcpt_domain == rcpt,
            WarmupCount.count > 0,
        )
        .values(count=WarmupCount.count - 1)
    )


def unreserve(s: Session, plan: Plan, rcpt_domain: str, now: dt.datetime) -> None:
    """Give back a reservation whose message was not sent after all (claim lost)."""
    key = day_of(now).isoformat()
    _unbump(s, plan.domain, key, ALL)
    _unbump(s, plan.domain, key, rcpt_domain)


def from_domain_of(s: Session, send_id: int) -> tuple[str, str | None]:
    """(From domain, publication slug) of a send."""
    row = s.execute(
        select(Publication.from_address, Publication.slug)
        .join(Send, Send.publication_id == Publication.id)
        .where(Send.id == send_id)
    ).first()
    if row is None:
        return get_settings().from_address.rpartition("@")[2].lower(), None
    return str(row[0]).rpartition("@")[2].lower(), row[1]


def engagement(s: Session, subscriber_ids: list[int] | None = None) -> dict[int, int]:
    """subscriber id -> human opens + 3 × clicks (not machine) of the last year."""
    since = clock.now() - dt.timedelta(days=ENGAGEMENT_DAYS)
    score = func.sum(
        case(
            (and_(Event.kind == "open", Event.cls == "human"), 1),
            (and_(Event.kind == "click", Event.cls != "machine"), 3),
            else_=0,
        )
    )
    q = (
        select(Delivery.subscriber_id, score)
        .join(Delivery, Delivery.id == Event.delivery_id)
        .where(Event.kind.in_(("open", "click")), Event.occurred_at >= since)
        .group_by(Delivery.subscriber_id)
    )
    return {int(k): int(v or 0) for k, v in s.execute(q) if v}


def plan_send(s: Session, send_id: int) -> dict[str, int] | None:
    """Spread a send's queued deliveries over the days of its domain's warm-up.

    Returns {local day: deliveries} (None: no warm-up for this domain). Most
    engaged first; a delivery already given a due time (a subject test's held
    readers) is left alone. Idempotent for the rows it has already placed.
    """
    domain, _pub = from_domain_of(s, send_id)
    plan = active_plan(s, domain)
    if plan is None:
        return None
    now = clock.now()
    today = day_of(now)
    rows = list(
        s.execute(
            select(Delivery.id, Delivery.subscriber_id, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(
                Delivery.send_id == send_id,
                Delivery.state == "queued",
                Delivery.next_attempt_at.is_(None),
            )
        ).all()
    )
    scores = engagement(s)
    rows.sort(key=lambda r: (-scores.get(int(r[1]), 0), int(r[0])))
    totals: dict[int, int] = defaultdict(int)
    by_dom: dict[tuple[int, str], int] = defaultdict(int)
    counts = used(s, plan.domain, today)  # other sends of the domain today
    totals[0] = counts.get(ALL, 0)
    for k, v in counts.items():
        if k != ALL:
            by_dom[(0, k)] = v
    first_open = 0  # the first day with room left, overall
    first_dom: dict[str, int] = {}
    placed: dict[int, list[int]] = defaultdict(list)
    for did, _sid, email in rows:
        rd = str(email).rpartition("@")[2].lower()
        d = max(first_open, first_dom.get(rd, 0))
        while True:
            day = today + dt.timedelta(days=d)
            cap = plan.cap(day)
            if totals[d] >= cap:
                if d == first_open:
                    first_open += 1
                d += 1
                continue
            dcap = plan.domain_cap(day, rd)
            if dcap is not None and by_dom[(d, rd)] >= dcap:
                first_dom[rd] = d + 1
                d += 1
                continue
            break
        totals[d] += 1
        by_dom[(d, rd)] += 1
        placed[d].append(int(did))
    for d, ids in placed.items():
        if d == 0:
            continue
        due = day_start(today + dt.timedelta(days=d))
        for i in range(0, len(ids), 1000):
            s.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids[i : i + 1000]))
                .values(next_attempt_at=due)
                .execution_options(synchronize_session=False)
            )
    return {
        (today + dt.timedelta(days=d)).isoformat(): len(ids) for d, ids in sorted(placed.items())
    }


def send_plan(s: Session, send_id: int) -> dict[str, int]:
    """{local day: deliveries still due that day} for a send (the console's view)."""
    rows = s.execute(
        select(Delivery.next_attempt_at, func.count())
        .where(Delivery.send_id == send_id, Delivery.state.in_(("queued", "deferred")))
        .group_by(Delivery.next_attempt_at)
    ).all()
    today = day_of(clock.now())
    out: dict[str, int] = defaultdict(int)
    for when, n in rows:
        if when is not None and when.year >= 9999:
            continue  # a subject test's held readers
        day = today if when is None else max(day_of(when), today)
        out[day.isoformat()] += int(n)
    return dict(sorted(out.items()))
