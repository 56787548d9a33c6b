"""Weekly slots, the approval gate and scheduling sends.

A publication's schedule is an ISO weekday and a local time in its own time
zone (e.g. Monday 09:00 Asia/Shanghai).  :func:`next_slot` computes the next
slot in that zone and converts it to UTC, so the local time stays 09:00 across
daylight-saving changes in zones that have them.

A slot is identified by its local ISO timestamp (``2026-11-30T09:00+08:00``);
``UNIQUE (publication_id, channel, slot)`` on sends stops two sends from
taking the same slot, whoever creates them.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.core.audit import audit
from newsletter.core.errors import NewsletterError, NotFound
from newsletter.issues.store import lock_issue
from newsletter.models import Issue, MailingList, Publication, Send, utcnow

__all__ = [
    "ScheduleError",
    "next_slot",
    "parse_time",
    "schedule_send",
    "set_schedule",
    "slot_key",
    "zone",
]


class ScheduleError(NewsletterError):
    """A schedule or a scheduling request was refused; the message says why."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai / 未知时区"
        ) from exc


def parse_time(value: str) -> dt.time:
    try:
        hh, mm = value.split(":")
        return dt.time(int(hh), int(mm))
    except ValueError as exc:
        raise ScheduleError(
            f"bad time {value!r}; expected HH:MM, e.g. 09:00 / 时间格式应为 HH:MM"
        ) from exc


def next_slot(weekday: int, at: dt.time, tz: str, after: dt.datetime) -> dt.datetime:
    """The first slot strictly after ``after`` (aware), returned in UTC."""
    z = zone(tz)
    local = after.astimezone(z)
    day = local.date()
    for offset in range(0, 15):
        d = day + dt.timedelta(days=offset)
        if d.isoweekday() != weekday:
            continue
        candidate = dt.datetime.combine(d, at, tzinfo=z)
        # A local time that does not exist (spring-forward gap) moves forward by the gap.
        candidate = candidate.astimezone(dt.UTC).astimezone(z)
        if candidate > local:
            return candidate.astimezone(dt.UTC)
    raise AssertionError("unreachable: a weekday recurs within 15 days")  # pragma: no cover


def slot_key(when: dt.datetime, tz: str) -> str:
    return when.astimezone(zone(tz)).isoformat(timespec="minutes")


def _move_placed_sends(session: Session, pub: Publication, actor: str) -> None:
    """Sends the scheduler already put on a slot move with the slot, in issue order: the
    earliest issue takes the next new slot, the next one the slot after, and so on. Sends
    given an explicit time (no slot) keep it."""
    from newsletter.core import clock

    assert pub.schedule_weekday is not None and pub.schedule_time is not None
    now = clock.now()
    placed = session.execute(
        select(Send, Issue.number)
        .join(Issue, Issue.id == Send.issue_id)
        .where(
            Send.publication_id == pub.id,
            Send.state == "scheduled",
            Send.slot.is_not(None),
            Send.scheduled_at > now,
        )
        .order_by(Issue.number, Send.channel)
    ).all()
    at, after, last_number = None, now, None
    for send, number in placed:
        if number != last_number:  # the channels of one issue share its slot
            at = next_slot(pub.schedule_weekday, parse_time(pub.schedule_time), pub.timezone, after)
            after, last_number = at, number
        assert at is not None
        old = send.scheduled_at
        send.slot = None  # free the old key first: (publication, channel, slot) is unique
        session.flush()
        send.scheduled_at, send.slot = at, slot_key(at, pub.timezone)
        audit(
            session,
            actor,
            "schedule.move",
            f"send:{send.id}",
            issue=number,
            old=old.isoformat() if old else None,
            new=at.isoformat(),
        )
    session.flush()


def set_schedule(
    session: Session,
    pub: Publication,
    *,
    weekday: int,
    time: str,
    tz: str,
    default_list: str | None = None,
    actor: str = "cli",
) -> Publication:
    if not 1 <= weekday <= 7:
        raise ScheduleError(f"weekday must be 1 (Monday) … 7 (Sunday), got {weekday}")
    parse_time(time)
    zone(tz)
    pub.schedule_weekday, pub.schedule_time, pub.timezone = weekday, time, tz
    _move_placed_sends(session, pub, actor)
    if default_list:
        ml = session.scalar(select(MailingList).where(MailingList.name == default_list))
        if ml is None:
            raise NotFound(f"list {default_list!r} does not exist / 列表不存在")
        pub.default_list_id = ml.id
    audit(session, actor, "schedule.set", pub.slug, weekday=weekday, time=time, tz=tz)
    return pub


def schedule_send(
    session: Session,
    issue: Issue,
    *,
    list_id: int | None,
    at: dt.datetime | None = None,
    channel: str = "email",
    variant_rule: str = "preference",
    actor: str = "cli",
    now: dt.datetime | None = None,
    with_wechat: bool | None = None,
) -> Send:
    """Create a scheduled send of an approved issue, at ``at`` or at the next weekly slot.

    When the WeChat channel is configured (and ``with_wechat`` is not False), a
    WeChat send is scheduled for the same slot: one schedule drives both channels.
    """
    now = now or utcnow()
    lock_issue(session, issue)  # not while the issue is being moved or sent back
    if issue.status not in ("approved", "scheduled") and not (
        channel == "wechat" and issue.status == "scheduled"
    ):
        raise ScheduleError(
            f"issue {issue.number} is {issue.status}; only an approved issue can be scheduled "
            "/ 只有已审核通过的期刊才能排期"
        )
    pub = session.get(Publication, issue.publication_id)
    assert pub is not None
    if at is None:
        if pub.schedule_weekday is None or pub.schedule_time is None:
            raise ScheduleError(
                f"publication {pub.slug} has no weekly schedule; pass --at or run "
                "`newsletter schedule set` / 未设置每周发送时间"
            )
        at = next_slot(pub.schedule_weekday, parse_time(pub.schedule_time), pub.timezone, now)
    if at.tzinfo is None:
        raise ScheduleError("the time must include a zone or offset, e.g. 2026-11-30T09:00+08:00")
    if at <= now:
        raise ScheduleError(f"{at.isoformat()} is in the past / 时间已过")
    slot = slot_key(at, pub.timezone)
    send = Send(
        publication_id=pub.id,
        issue_id=issue.id,
        list_id=list_id,
        channel=channel,
        variant_rule=variant_rule,
        state="scheduled",
        slot=slot,
        scheduled_at=at,
        created_by=actor,
    )
    try:
        with session.begin_nested():
            session.add(send)
            session.flush()
    except IntegrityError as exc:
        other = session.scalar(
            select(Send.id).where(
                Send.publication_id == pub.id, Send.channel == channel, Send.slot == slot
            )
        )
        raise ScheduleError(
            f"slot {slot} of {pub.slug} is already taken by send {other} / 该时段已有发送任务"
        ) from exc
    issue.status = "scheduled"
    audit(session, actor, "send.schedule", f"send:{send.id}", slot=slot, issue=issue.number)
    if channel == "email" and with_wechat is not False and _wechat_configured():
        schedule_send(
            session,
            issue,
            list_id=None,
            at=at,
            channel="wechat",
            actor=actor,
            now=now,
            with_wechat=False,
        )
    return send


def _wechat_configured() -> bool:
    from newsletter.core.wechat_settings import get_wechat_settings

    return get_wechat_settings().configured
