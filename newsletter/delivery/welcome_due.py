"""Finding the welcome steps that are due and putting them in the ledger.

:func:`plan_due` runs on every scheduler tick (beat's ``newsletter.tick``) and in the
embedded mode's welcome loop.  For each step it inserts one queued delivery into the
step's standing send per subscriber who:

* confirmed the list's opt-in after the step was added (existing readers are never
  mailed a series added later), at least the step's delay ago;
* is still subscribed and active, and whose address is not suppressed;
* has had every earlier step of the series dealt with (sent, or given up on), so the
  steps arrive in order even after the system was down for days.

The insert is one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` against ``UNIQUE
(send_id, subscriber_id)``: two schedulers ticking at once cannot plan a step twice
for one subscriber, and a step once dealt with is never planned again (an unsubscribe
in between leaves the row ``skipped`` for good).  The batch machinery checks the
subscription and the suppression list once more just before SMTP.

A subscriber who joins while a weekly send of the list is going out is added to that
send once their first welcome step has gone (see :func:`join_live_sends`): the welcome
first, the issue once.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import and_, exists, func, literal, select, text, update
from sqlalchemy.orm import Session

from newsletter.core.db import session_scope
from newsletter.delivery import queries, sends
from newsletter.models import (
    Delivery,
    Send,
    Subscriber,
    Subscription,
    Suppression,
    WelcomeStep,
    utcnow,
)

__all__ = ["DONE", "due_sends", "join_live_sends", "plan_due"]

log = logging.getLogger(__name__)

#: Delivery states after which a step counts as dealt with for its subscriber.
DONE = ("sent", "bounced", "failed", "skipped")


def _plan_step(session: Session, step: WelcomeStep, now: dt.datetime) -> int:
    """Insert the due deliveries of one step; returns how many rows were new."""
    earlier = WelcomeStep.__table__.alias("earlier_step")
    prev = Delivery.__table__.alias("prev_delivery")
    waiting_earlier = exists().where(
        earlier.c.list_id == step.list_id,
        earlier.c.position < step.position,
        earlier.c.created_at <= Subscription.confirmed_at,
        ~exists().where(
            prev.c.send_id == earlier.c.send_id,
            prev.c.subscriber_id == Subscriber.id,
            prev.c.state.in_(DONE),
        ),
    )
    mine = Delivery.__table__.alias("mine")
    eligible = (
        select(
            literal(step.send_id).label("send_id"),
            Subscriber.id,
            Subscriber.variant,
            literal("queued"),
            literal(0),
            literal(False),
        )
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(
            Subscription.list_id == step.list_id,
            Subscription.status == "active",
            Subscription.confirmed_at.is_not(None),
            Subscription.confirmed_at >= step.created_at,
            Subscription.confirmed_at <= now - dt.timedelta(seconds=step.delay_seconds),
            Subscriber.status == "active",
            ~exists().where(Suppression.email == Subscriber.email),
            ~exists().where(mine.c.send_id == step.send_id, mine.c.subscriber_id == Subscriber.id),
            ~waiting_earlier,
        )
        .order_by(Subscriber.id)
    )
    stmt = (
        sends._insert(session)
        .from_select(
            ["send_id", "subscriber_id", "variant", "state", "attempts", "at_risk"], eligible
        )
        .on_conflict_do_nothing(index_elements=["send_id", "subscriber_id"])
        .returning(Delivery.id)  # (rowcount is -1 for this statement on psycopg)
    )
    added = len(session.execute(stmt).all())
    if added:
        session.execute(
            update(Send)
            .where(Send.id == step.send_id)
            .values(planned_count=Send.planned_count + added, updated_at=now)
        )
    return added


def plan_due(now: dt.datetime | None = None) -> list[int]:
    """Plan every due welcome step; returns the sends that have work now (the caller
    starts their batch chains: new rows, rows waiting for a retry whose time has come,
    and weekly sends that took in a new subscriber)."""
    now = now or utcnow()
    with session_scope() as s:
        steps = list(
            s.scalars(select(WelcomeStep).order_by(WelcomeStep.list_id, WelcomeStep.position))
        )
        for step in steps:
            try:
                with s.begin_nested():
                    n = _plan_step(s, step, now)
            except Exception:  # one step's failure must not hold back the others
                log.exception("welcome step %s: planning failed", step.id)
                continue
            if n:
                log.info("welcome step %s: %s subscribers due", step.id, n)
    out = due_sends(now)
    out.extend(join_live_sends(now))
    return out


def due_sends(now: dt.datetime) -> list[int]:
    """Welcome sends with a delivery due and not leased (queued, a retry whose time has
    come, or one a dead worker left ``sending``)."""
    with session_scope() as s:
        rows = s.scalars(
            select(Send.id)
            .where(
                Send.kind == "welcome",
                Send.state == "sending",
                exists().where(
                    Delivery.send_id == Send.id,
                    Delivery.state.in_(("queued", "deferred", "sending")),
                    (Delivery.state == "sending")
                    | Delivery.next_attempt_at.is_(None)
                    | (Delivery.next_attempt_at <= now),
                    Delivery.lease_until.is_(None) | (Delivery.lease_until <= now),
                ),
            )
            .order_by(Send.id)
        )
        return [int(i) for i in rows]


def join_live_sends(now: dt.datetime) -> list[int]:
    """Add to each weekly send that is going out the list's subscribers who confirmed
    after it started and whose first welcome step is done; returns the sends that
    took someone in.  Only lists with a welcome series take part, so a list without one
    keeps the old rule (a send reaches who was subscribed when it started)."""
    out: list[int] = []
    with session_scope() as s:
        live = s.execute(
            select(Send.id, Send.list_id, Send.started_at).where(
                Send.kind == "issue",
                Send.channel == "email",
                Send.state.in_(("sending", "paused")),
                Send.started_at.is_not(None),
                Send.subject_variants.is_(None),  # a subject test deals its readers once
                Send.resend_reason.is_(None),
                exists().where(WelcomeStep.list_id == Send.list_id),
            )
        ).all()
    for send_id, list_id, started_at in live:
        if list_id is None or started_at is None:
            continue
        try:
            with session_scope() as s:
                if _join(s, int(send_id), int(list_id), started_at, now):
                    out.append(int(send_id))
        except Exception:
            log.exception("send %s: taking in new subscribers failed", send_id)
    return out


def _join(s: Session, send_id: int, list_id: int, started_at: dt.datetime, now: dt.datetime) -> int:
    if s.get_bind().dialect.name == "postgresql":
        # The send's row lock: ``maybe_finish`` takes it too, so a send never finishes
        # with a row inserted behind its back.  Then the issue's plan lock, as ``plan``.
        state = s.scalar(select(Send.state).where(Send.id == send_id).with_for_update())
        if state not in ("sending", "paused"):
            return 0
        issue_id = s.scalar(select(Send.issue_id).where(Send.id == send_id))
        s.execute(text(queries.ISSUE_PLAN_LOCK), {"i": issue_id})
    send = s.get(Send, send_id)
    if send is None or send.state not in ("sending", "paused"):
        return 0
    eligible, _already = sends._eligible(
        s,
        send_id=send_id,
        issue_id=send.issue_id,
        channel=send.channel,
        list_id=list_id,
        segment_id=send.segment_id,
        variant_rule=send.variant_rule,
        resend=False,
    )
    first = (
        select(WelcomeStep.send_id, WelcomeStep.created_at)
        .where(WelcomeStep.list_id == list_id)
        .order_by(WelcomeStep.position)
        .limit(1)
    ).subquery()
    welcomed = Delivery.__table__.alias("welcomed")
    mine = Delivery.__table__.alias("mine")
    eligible = eligible.where(
        Subscription.confirmed_at.is_not(None),
        Subscription.confirmed_at > started_at,
        ~exists().where(mine.c.send_id == send_id, mine.c.subscriber_id == Subscriber.id),
        exists().where(
            and_(
                welcomed.c.send_id == first.c.send_id,
                welcomed.c.subscriber_id == Subscriber.id,
                welcomed.c.state.in_(DONE),
            )
        ),
    )
    stmt = (
        sends._insert(s)
        .from_select(
            ["send_id", "subscriber_id", "variant", "state", "attempts", "at_risk"], eligible
        )
        .on_conflict_do_nothing(index_elements=["send_id", "subscriber_id"])
        .returning(Delivery.id)
    )
    added = len(s.execute(stmt).all())
    if added:
        planned = s.scalar(select(func.count()).where(Delivery.send_id == send_id)) or 0
        s.execute(
            update(Send).where(Send.id == send_id).values(planned_count=planned, updated_at=now)
        )
        log.info("send %s: %s new subscribers welcomed, then taken in", send_id, added)
    return added
