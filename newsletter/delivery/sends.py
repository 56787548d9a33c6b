"""The send state machine and planning.

States: draft → scheduled → planning → sending ⇄ paused → finished | cancelled | failed.
Every transition is one conditional ``UPDATE … WHERE state IN (…)``: atomic,
and idempotent (asking for the state a send is already in is not an error).

Planning inserts one delivery per eligible subscriber with a single
``INSERT … SELECT … ON CONFLICT DO NOTHING``; the unique (send, subscriber)
constraint makes re-planning a no-op.

Readers count per issue, not per send: planning skips every subscriber whom
another send of the same issue on the same channel has reached (``sent``) or
is reaching (``sending``, or queued/deferred in a send that is still live).
Plans of one issue are serialised (a transaction-scoped advisory lock on
PostgreSQL; SQLite has one writer), so two sends planned at the same moment
cannot both take the same reader. Only a send created with an explicit,
audited ``resend_reason`` plans everyone again.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import and_, exists, func, literal, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound, StateError
from newsletter.delivery import queries
from newsletter.models import Delivery, Send, Subscriber, Subscription, Suppression, utcnow

log = logging.getLogger(__name__)

__all__ = [
    "maybe_finish",
    "pending",
    "LIVE",
    "TRANSITIONS",
    "audience",
    "other_sends",
    "plan",
    "state_counts",
    "transition",
]

#: Send states whose queued deliveries will still go out.
LIVE = ("planning", "sending", "paused")

TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "schedule": (frozenset({"draft"}), "scheduled"),
    "unschedule": (frozenset({"scheduled"}), "draft"),
    "plan": (frozenset({"draft", "scheduled"}), "planning"),
    "start": (frozenset({"planning"}), "sending"),
    "pause": (frozenset({"sending", "planning"}), "paused"),
    "resume": (frozenset({"paused"}), "sending"),
    "cancel": (frozenset({"draft", "scheduled", "planning", "sending", "paused"}), "cancelled"),
    "finish": (frozenset({"sending"}), "finished"),
    "fail": (frozenset({"planning", "sending", "paused"}), "failed"),
    "empty": (frozenset({"planning"}), "empty"),
}


def transition(session: Session, send_id: int, action: str, *, error: str | None = None) -> bool:
    """Apply ``action``. True if this call changed the state, False if already there.

    Raises StateError when the send is in a state the action cannot leave from.
    """
    sources, target = TRANSITIONS[action]
    values: dict[str, object] = {"state": target, "updated_at": utcnow()}
    if action == "start":
        values["started_at"] = utcnow()
    if action in ("finish", "cancel", "fail"):
        values["finished_at"] = utcnow()
    if error is not None:
        values["error"] = error
    res = session.execute(
        update(Send).where(Send.id == send_id, Send.state.in_(sources)).values(**values)
    )
    if res.rowcount == 1:  # type: ignore[attr-defined]
        # Before the commit: once the caller's transaction has committed, every worker's
        # next message already sees the flag (docs/delivery.md, "Control").
        stop_flag(send_id, None if target == "sending" else target)
        if action == "cancel":
            skip_unsent(session, send_id)
        return True
    current = session.scalar(select(Send.state).where(Send.id == send_id))
    if current is None:
        raise NotFound(f"send {send_id} does not exist")
    if current == target:
        return False
    raise StateError(
        f"send {send_id} is {current}; cannot {action} (allowed from: {', '.join(sorted(sources))})"
    )


def skip_unsent(session: Session, send_id: int) -> None:
    """A cancelled send's rows still to go will never go: say so on each, so the send shows
    no queue. Run at the cancel, and again by a worker whose message in flight at the
    cancel ended deferred (a row ``sending`` finishes and records its outcome first)."""
    session.execute(
        update(Delivery)
        .where(Delivery.send_id == send_id, Delivery.state.in_(("queued", "deferred")))
        .values(state="skipped", last_reply="cancelled / 已取消", claimed_by=None,
                lease_until=None)
    )  # fmt: skip


#: How long a stop flag lives in Redis; the database's state is what counts, the flag
#: only tells a worker to look at it before its next message.
STOP_FLAG_SECONDS = 3600


def stop_key(send_id: int) -> str:
    return f"{get_settings().redis_prefix}send-stop:{send_id}"


def stop_flag(send_id: int, state: str | None) -> None:
    """Raise (``state``: the send's new state) or lower (None) the flag that a sending
    loop reads before every message. Without Redis there is no flag: workers then read
    the send's state from the database (see ``group._Stop``)."""
    if not get_settings().redis_url:
        return
    from newsletter.core.redis import redis_client
    from newsletter.delivery.stopwatch import stop_channel

    try:
        # The key first, then the message: a listener that subscribed after this message
        # was published reads the key (``stopwatch``).
        with redis_client().pipeline(transaction=True) as p:
            if state is None:
                p.delete(stop_key(send_id))
            else:
                p.set(stop_key(send_id), state, ex=STOP_FLAG_SECONDS)
            p.publish(stop_channel(), f"{send_id} {state or ''}")
            p.execute()
    except Exception as exc:  # Redis down: workers still stop between groups
        log.warning("send %s: stop flag not written (%s)", send_id, exc.__class__.__name__)


def _insert(session: Session):  # type: ignore[no-untyped-def]
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(Delivery)
    return sqlite.insert(Delivery)


def plan(session: Session, send_id: int) -> tuple[int, int]:
    """Insert the deliveries of ``send_id``. Returns (planned, excluded). Idempotent."""
    send = session.get(Send, send_id)
    if send is None:
        raise NotFound(f"send {send_id} does not exist")
    if send.list_id is None:
        raise StateError(f"send {send_id} has no audience list")
    if session.get_bind().dialect.name == "postgresql":
        # one plan per issue at a time: the cross-send check below must see the other's rows
        session.execute(text(queries.ISSUE_PLAN_LOCK), {"i": send.issue_id})
    eligible, already = _eligible(
        session,
        send_id=send_id,
        issue_id=send.issue_id,
        channel=send.channel,
        list_id=send.list_id,
        segment_id=send.segment_id,
        variant_rule=send.variant_rule,
        resend=bool(send.resend_reason),
    )
    stmt = (
        _insert(session)
        .from_select(
            ["send_id", "subscriber_id", "variant", "state", "attempts", "at_risk"], eligible
        )
        .on_conflict_do_nothing(index_elements=["send_id", "subscriber_id"])
    )
    session.execute(stmt)
    planned = session.scalar(select(func.count()).where(Delivery.send_id == send_id)) or 0
    members = session.scalar(select(func.count()).where(Subscription.list_id == send.list_id)) or 0
    excluded = max(members - planned, 0)
    session.execute(
        update(Send)
        .where(Send.id == send_id)
        .values(planned_count=planned, excluded_count=excluded, already_received=already or 0)
    )
    return planned, excluded


def other_sends(session: Session, send: Send) -> list[tuple[int, str]]:
    """(id, state) of the other sends of the same issue and channel that went or are going out."""
    return [
        (int(i), str(st))
        for i, st in session.execute(
            select(Send.id, Send.state).where(
                Send.issue_id == send.issue_id,
                Send.channel == send.channel,
                Send.id != send.id,
                Send.state.in_((*LIVE, "finished", "scheduled")),
            )
        )
    ]


def _eligible(
    session: Session,
    *,
    send_id: int,
    issue_id: int,
    channel: str,
    list_id: int,
    segment_id: int | None,
    variant_rule: str,
    resend: bool,
) -> tuple[Any, int]:
    """(the SELECT of deliveries to plan, how many readers another send already reached)."""
    if variant_rule == "preference":
        variant = Subscriber.variant
    else:
        variant = literal(variant_rule)  # type: ignore[assignment]
    eligible = (
        select(
            literal(send_id).label("send_id"),
            Subscriber.id,
            variant,
            literal("queued"),
            literal(0),
            literal(False),
        )
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(
            Subscription.list_id == list_id,
            Subscription.status == "active",
            Subscriber.status == "active",
            ~exists().where(Suppression.email == Subscriber.email),
        )
        .order_by(Subscriber.id)
    )
    if segment_id is not None:
        from newsletter.audience.segments import compile_segment
        from newsletter.models import Segment

        seg = session.get(Segment, segment_id)
        if seg is None:
            raise NotFound(f"segment {segment_id} does not exist")
        eligible = eligible.where(compile_segment(seg.definition))
    if resend:
        return eligible, 0
    other = Send.__table__.alias("other_send")
    earlier = Delivery.__table__.alias("earlier")
    reached = exists().where(
        earlier.c.subscriber_id == Subscriber.id,
        earlier.c.send_id == other.c.id,
        other.c.issue_id == issue_id,
        other.c.channel == channel,
        other.c.id != send_id,
        or_(
            earlier.c.state.in_(("sent", "sending")),
            and_(earlier.c.state.in_(("queued", "deferred")), other.c.state.in_(LIVE)),
        ),
    )
    already = session.scalar(select(func.count()).select_from(eligible.where(reached).subquery()))
    return eligible.where(~reached), int(already or 0)


def audience(
    session: Session,
    *,
    issue_id: int,
    list_id: int,
    segment_id: int | None = None,
    channel: str = "email",
) -> tuple[int, int]:
    """(readers a new send would reach now, readers skipped as already reached)."""
    eligible, already = _eligible(
        session,
        send_id=0,
        issue_id=issue_id,
        channel=channel,
        list_id=list_id,
        segment_id=segment_id,
        variant_rule="preference",
        resend=False,
    )
    n = session.scalar(select(func.count()).select_from(eligible.subquery()))
    return int(n or 0), already


def state_counts(session: Session, send_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.send_id == send_id)
        .group_by(Delivery.state)
    )
    counts = {
        state: 0
        for state in ("queued", "sending", "sent", "deferred", "bounced", "failed", "skipped")
    }
    for state, n in rows:
        counts[state] = n
    return counts


# -- completion: a send is finished when no delivery is left to try -------------------


def pending(session: Session, send_id: int) -> tuple[int, dt.datetime | None]:
    """(non-terminal deliveries, earliest due time among queued/deferred ones)."""
    from sqlalchemy import func

    n = (
        session.scalar(
            select(func.count()).where(
                Delivery.send_id == send_id, Delivery.state.in_(("queued", "sending", "deferred"))
            )
        )
        or 0
    )
    nxt = session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.send_id == send_id, Delivery.state.in_(("queued", "deferred"))
        )
    )
    return n, nxt


def maybe_finish(send_id: int) -> bool:
    """Mark the send finished if every delivery is in a terminal state; then keep its
    statistics' denominators, so the first reader of its figures does not compute them."""
    finished = _finish(send_id)
    if finished == "now":
        from newsletter.tracking.audience import warm

        warm(send_id)
    return finished != "no"


def _finish(send_id: int) -> str:
    """ "now" (this call finished it), "yes" (nothing left to finish) or "no"."""
    with session_scope() as s:
        # The send's row first: a subscriber taken in while it goes out
        # (``welcome_due.join_live_sends``) is inserted under the same lock, so the count
        # below sees every row (PostgreSQL; SQLite has one writer).
        lock = select(Send.state, Send.kind).where(Send.id == send_id)
        if s.get_bind().dialect.name == "postgresql":
            lock = lock.with_for_update()
        row = s.execute(lock).first()
        n, _ = pending(s, send_id)
        if n:
            return "no"
        state = row.state if row is not None else None
        if row is not None and row.kind == "welcome":
            return "yes"  # a welcome step's send stands: nothing to do until the next due
        if state != "sending":
            return "yes" if state == "finished" else "no"
        transition(s, send_id, "finish")
        counts = state_counts(s, send_id)
        log.info("send %s finished: %s", send_id, counts)
        send = s.get(Send, send_id)
        if send is not None:
            from newsletter.core.events import emit

            data = {
                "send_id": send_id,
                "issue_id": send.issue_id,
                "list_id": send.list_id,
                "channel": send.channel,
                "counts": {str(k): int(v) for k, v in counts.items()},
            }
            emit(s, "send.finished", [(data, None)])
        if send is not None and send.channel == "email":
            from newsletter.delivery.alerts import notify
            from newsletter.models import Issue

            issue = s.get(Issue, send.issue_id)
            if issue is not None and issue.status in ("approved", "scheduled"):
                issue.status = "sent"
            at_risk = s.scalar(
                select(func.count()).where(Delivery.send_id == send_id, Delivery.at_risk)
            )
            notify(
                s,
                "finished",
                f"send {send_id} finished",
                "\n".join(f"{k}: {v}" for k, v in counts.items())
                + f"\nat risk of duplicate (re-sent after a crash): {at_risk}",
                key=f"finished:{send_id}",
                once=True,
            )
        return "now"
