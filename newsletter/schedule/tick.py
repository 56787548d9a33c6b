"""The scheduler tick: start due sends exactly once, revive stalled ones, warn ops.

A due send is claimed by one conditional ``UPDATE send SET state='planning'
WHERE state='scheduled' AND scheduled_at <= now``: when two beat processes
tick at once, the database lets exactly one of them win each send.  A send
that was due while everything was down starts when the system comes back if
it is still within the grace period; beyond it, ops are notified and the send
waits in ``scheduled`` for a decision (``send start`` or a new schedule).

The tick also plans the welcome steps that are due (``delivery.welcome_due``) and
puts the next approved issue of a scheduled publication on its
next weekly slot, and warns ops 24 hours ahead when a slot has no approved issue.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.delivery.alerts import notify
from newsletter.models import Delivery, Issue, Publication, Send, utcnow
from newsletter.schedule.slots import ScheduleError, next_slot, parse_time, schedule_send, slot_key

log = logging.getLogger(__name__)

__all__ = ["tick"]


def tick(now: dt.datetime | None = None) -> list[int]:
    """Return the ids of sends the caller must (re)start."""
    now = now or utcnow()
    cfg = get_settings()
    grace = dt.timedelta(seconds=cfg.grace_seconds)
    _plan_publications(now)
    out: list[int] = []
    from newsletter.delivery.heal import due_for_probe, heal
    from newsletter.delivery.relays import probe_due

    probe_due()  # relays out of service come back when they answer a probe
    for send_id in due_for_probe(now):  # relay outages heal themselves
        if heal(send_id, now) == "resumed":
            out.append(send_id)
    from newsletter.delivery.subjects import decide_due

    with session_scope() as s:  # subject tests whose time has come release the remainder
        out.extend(decide_due(s, now))
    with session_scope() as s:
        due = s.execute(
            select(Send.id, Send.scheduled_at, Send.slot).where(
                Send.state == "scheduled", Send.scheduled_at <= now
            )
        ).all()
        for send_id, sched, slot in due:
            if sched is not None and now - sched > grace:
                notify(
                    s,
                    "missed",
                    f"send {send_id} missed its slot {slot}",
                    f"Send {send_id} was due at {sched.isoformat()} but the system was down "
                    f"for longer than the grace period ({grace}). It has not been started. "
                    f"Start it with `newsletter send start {send_id}` or reschedule it.",
                    key=f"send:{send_id}",
                    once=True,
                )
                continue
            res = s.execute(
                update(Send)
                .where(Send.id == send_id, Send.state == "scheduled")
                .values(state="planning", updated_at=now)
            )
            if res.rowcount == 1:  # type: ignore[attr-defined]
                out.append(send_id)
        # Sends stuck in planning (crash while planning) or sending with nobody working.
        stale = now - dt.timedelta(seconds=cfg.stall_seconds)
        for send_id, state in s.execute(
            select(Send.id, Send.state).where(
                Send.state.in_(("planning", "sending")),
                Send.updated_at < stale,
                Send.kind != "welcome",  # welcome steps: below
            )
        ):
            if send_id in out:
                continue
            if state == "planning":
                s.execute(update(Send).where(Send.id == send_id).values(updated_at=now))
                out.append(send_id)
                continue
            busy = s.scalar(
                select(func.count()).where(
                    Delivery.send_id == send_id,
                    Delivery.lease_until.is_not(None),
                    Delivery.lease_until > now,
                )
            )
            recent = s.scalar(select(func.max(Delivery.sent_at)).where(Delivery.send_id == send_id))
            if not busy and (recent is None or recent < stale) and _due_or_done(s, send_id, now):
                s.execute(update(Send).where(Send.id == send_id).values(updated_at=now))
                out.append(send_id)
    from newsletter.delivery.welcome_due import plan_due

    # Welcome steps now due (planned once per subscriber and step, however many ticks
    # run at once), their retries, and weekly sends that took in a new subscriber.
    out.extend(i for i in plan_due(now) if i not in out)
    return out


def _plan_publications(now: dt.datetime) -> None:
    """Put approved issues on their publication's next slot; warn about empty slots."""
    with session_scope() as s:
        pubs = s.scalars(
            select(Publication).where(
                Publication.schedule_weekday.is_not(None), Publication.schedule_time.is_not(None)
            )
        ).all()
        for pub in pubs:
            assert pub.schedule_weekday is not None and pub.schedule_time is not None
            slot_at = next_slot(
                pub.schedule_weekday, parse_time(pub.schedule_time), pub.timezone, now
            )
            slot = slot_key(slot_at, pub.timezone)
            taken = s.scalar(
                select(Send.id).where(
                    Send.publication_id == pub.id, Send.channel == "email", Send.slot == slot
                )
            )
            if taken:
                continue
            issue = s.scalars(
                select(Issue)
                .where(
                    Issue.publication_id == pub.id,
                    Issue.status == "approved",
                    ~select(Send.id).where(Send.issue_id == Issue.id).exists(),
                )
                .order_by(Issue.number)
            ).first()
            if issue is not None:
                # issue order: never put an issue before an earlier one that waits for later
                earlier = s.scalar(
                    select(Send.id)
                    .join(Issue, Issue.id == Send.issue_id)
                    .where(
                        Send.publication_id == pub.id,
                        Send.state == "scheduled",
                        Issue.number < issue.number,
                        Send.scheduled_at > slot_at,
                    )
                )
                if earlier is not None:
                    log.warning(
                        "scheduler: %s: issue %s waits; an earlier issue is scheduled later",
                        pub.slug,
                        issue.number,
                    )
                    continue
            if issue is not None and pub.default_list_id is not None:
                try:
                    with s.begin_nested():
                        schedule_send(
                            s,
                            issue,
                            list_id=pub.default_list_id,
                            at=slot_at,
                            actor="scheduler",
                            now=now,
                        )
                except ScheduleError as exc:  # another tick took the slot first: skip it only
                    log.info("scheduler: %s: %s", pub.slug, exc)
            elif slot_at - now <= dt.timedelta(hours=24):
                notify(
                    s,
                    "no_issue",
                    f"no approved issue for {pub.name} at {slot}",
                    f"The weekly slot {slot} of {pub.name} is less than 24 hours away and "
                    "no approved issue is waiting for it. / 下一期尚无已审核的期刊。",
                    key=f"{pub.slug}:{slot}",
                    once=True,
                )


def _due_or_done(s: Session, send_id: int, now: dt.datetime) -> bool:
    """Has the send something due now, or nothing left (so it can finish)? A send whose
    deliveries all wait for later (back-off, a warm-up day) has a chain asleep for them:
    reviving it every tick would only pile up sleeping chains."""
    waiting = (Delivery.send_id == send_id) & Delivery.state.in_(("queued", "deferred"))
    left = s.scalar(
        select(func.count()).where(
            Delivery.send_id == send_id, Delivery.state.in_(("queued", "deferred", "sending"))
        )
    )
    if not left:
        return True
    due = s.scalar(
        select(func.count()).where(
            (Delivery.send_id == send_id) & (Delivery.state == "sending")
            | waiting & (Delivery.next_attempt_at.is_(None) | (Delivery.next_attempt_at <= now))
        )
    )
    return bool(due)
