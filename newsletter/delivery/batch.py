"""Sending one batch of deliveries: claim (``lease``), prepare each message, mark a group
``sending``, send it (``group``), write back what became of it (``outcomes``), and finish
the send when nothing is left (``sends.maybe_finish``).

Each message moves ``queued → sending`` in the database *before* its SMTP transaction and
to its outcome after it. Messages are marked in groups of ``send_group_size`` (k) by one
statement and their outcomes written by one statement, so the only deliveries whose fate
is uncertain after a crash are those still ``sending``: at most k per worker process.
Policy for them (docs/delivery.md): when their lease expires they are sent again and
flagged ``at_risk``; the send report counts them, so the possible duplicates are measured,
not guessed.

Suppression and unsubscribes are checked again for the whole batch right after the claim,
so a running send skips a person from the moment they leave.

Pause and cancel are obeyed before every message (``group._Stop``); as a second wall, the
statement that marks a group ``sending`` also requires its send to be ``sending``.

A batch that loses its database keeps the outcomes not yet committed and records them,
fenced by its claim, after reconnecting (``recovery``): a dropped connection costs no
duplicate.

A delivery's Message-ID is the same on every attempt (its id and a salt fixed per
installation), so a copy re-sent after a crash can be dropped by receivers.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy import exists, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from newsletter.core.clock import now as utcnow
from newsletter.core.config import get_settings
from newsletter.core.db import engine, session_scope
from newsletter.core.safety.headers import HeaderInjection
from newsletter.core.safety.signing import delivery_token, unsubscribe_token
from newsletter.delivery import queries, warmup
from newsletter.delivery.assemble import CompiledMessage, Recipient
from newsletter.delivery.compiled import compiled_for
from newsletter.delivery.group import _Route, _send_group, _Stop
from newsletter.delivery.lease import Heartbeat, claim, release
from newsletter.delivery.outcomes import (
    BatchResult,
    Later,
    Ready,
    build,
    finish_group,
    hand_back,
    maybe_auto_pause,
    release_claim,
)
from newsletter.delivery.recovery import _Flight, _recover
from newsletter.delivery.relays import RelayPool, probe_due
from newsletter.delivery.sends import skip_unsent
from newsletter.delivery.throttle import throttle
from newsletter.models import Delivery, Send, Subscriber, Subscription, Suppression

__all__ = ["POOL_ENV", "build_ahead", "process_batch"]

log = logging.getLogger(__name__)


def process_batch(send_id: int, *, batch_size: int | None = None) -> BatchResult:
    """Claim one batch of ``send_id`` and send it. Safe to call concurrently and repeatedly."""
    cfg = get_settings()
    result = BatchResult()
    try:
        # Relays out of service whose probe is due (claimed: one prober each). Before the
        # claim: a probe of a hung relay waits up to its deadline, and no claimed row
        # may wait with it.
        probe_due()
    except Exception:  # a probe must never stop a batch
        log.exception("relay probe failed")
    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None or send.state != "sending":
            result.stopped = send.state if send else "missing"
            return result
        claim_token, ids = claim(s, send_id, batch_size or cfg.batch_size, cfg.lease_seconds)
        result.claimed = len(ids)
        if not ids:
            return result
        issue_id, list_id = send.issue_id, send.list_id
        _from_domain, publication = warmup.from_domain_of(s, send_id)
        rows = s.execute(
            select(
                Delivery.id,
                Delivery.variant,
                Delivery.attempts,
                Subscriber.id,
                Subscriber.email,
                Subscriber.name,
                Subscriber.status,
                exists().where(Suppression.email == Subscriber.email).label("suppressed"),
                exists()
                .where(
                    Subscription.subscriber_id == Subscriber.id,
                    Subscription.list_id == list_id,
                    Subscription.status == "active",
                )
                .label("subscribed"),
                Delivery.subject_idx,
                Delivery.relay,
            )
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.id)
        ).all()
        skip = {r[0] for r in rows if r.suppressed or not r.subscribed or r.status != "active"}
        if skip:
            s.execute(
                update(Delivery)
                .where(Delivery.id.in_(list(skip)))
                .values(
                    state="skipped",
                    last_reply="suppressed or unsubscribed before sending",
                    claimed_by=None,
                    lease_until=None,
                )
                .execution_options(synchronize_session=False)
            )
            result.skipped = len(skip)
    todo = [r for r in rows if r[0] not in skip]
    if not todo:
        return result
    pool = RelayPool(cfg)
    try:
        _send_rows(send_id, issue_id, list_id, todo, _Route(pool, publication), result, claim_token)
    finally:
        pool.close()
    maybe_auto_pause(send_id, result)
    return result


def _send_rows(
    send_id: int,
    issue_id: int,
    list_id: int | None,
    rows: list,  # type: ignore[type-arg]
    route: _Route,
    result: BatchResult,
    claim_token: str,
) -> None:
    compiled_by_variant: dict[tuple[str, int | None], CompiledMessage] = {}
    thr = throttle()
    # One connection for the whole batch: a session releases its connection at every
    # commit, and each checkout would cost a pre-ping round trip — one per message.
    with engine().connect() as conn, Session(bind=conn, expire_on_commit=False) as s:
        pg = s.get_bind().dialect.name == "postgresql"
        if pg:
            # Per-message state changes need not wait for the WAL flush: a worker crash is
            # covered by the ledger as before; only a crash of PostgreSQL itself could lose
            # the last few milliseconds of outcomes (those deliveries are then re-sent).
            s.execute(text(queries.SYNC_COMMIT_OFF))
        beat = Heartbeat(claim_token, get_settings().lease_seconds)
        beat.start()
        # Builds and DKIM-signs messages while this thread waits on the database and
        # the relays (the RSA signature and the body hash release the GIL).
        builder = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="build") if build_ahead() else None
        )
        flight = _Flight()
        try:
            _send_loop(
                s,
                send_id,
                issue_id,
                list_id,
                rows,
                route,
                result,
                claim_token,
                thr,
                compiled_by_variant,
                beat,
                builder,
                flight,
            )
            s.commit()  # the last outcomes
            flight.committed()
        except BaseException as exc:
            # The first error is the one that matters: a rollback that fails too (the
            # connection is gone) must not replace it with a PendingRollbackError.
            try:
                s.rollback()
                if pg:
                    s.execute(text(queries.SYNC_COMMIT_RESET))
                    s.commit()
            except Exception as cleanup:
                log.debug("cleanup after a failed batch: %s", cleanup)
            if isinstance(exc, DBAPIError):
                # What went out is known here, not in the database: record it on a new
                # connection while the heartbeat still holds the lease.
                _recover(claim_token, flight, exc)
            raise
        finally:
            beat.stop()
            if builder is not None:
                builder.shutdown(wait=True, cancel_futures=True)
        if pg:
            s.execute(text(queries.SYNC_COMMIT_RESET))
            s.commit()


#: Set by the Celery worker (workers/celery_app.py) to its pool's process count.
POOL_ENV = "NL_WORKER_POOL_PROCESSES"


def build_ahead() -> bool:
    """Whether a batch builds its messages in a thread of its own, ahead of sending.

    It pays while the process would otherwise wait on the database and the relay with a
    core free (one sending process per core); with more processes than cores, the others
    fill those waits and the extra threads only contend for the cores (benchmarks/README.md,
    B4, has the measurements)."""
    if os.environ.get("NL_BUILD_AHEAD"):
        return os.environ["NL_BUILD_AHEAD"] == "1"
    procs = int(os.environ.get(POOL_ENV) or 1)
    return procs <= (os.cpu_count() or 1)


def _subject(s: Session, send_id: int, idx: int | None) -> str | None:
    """The subject-test subject of ``idx`` (None: the issue's own subject)."""
    if idx is None:
        return None
    subjects = s.scalar(select(Send.subject_variants).where(Send.id == send_id))
    return subjects[idx] if subjects and 0 <= idx < len(subjects) else None


def _send_loop(
    s: Session,
    send_id: int,
    issue_id: int,
    list_id: int | None,
    rows: list,  # type: ignore[type-arg]
    route: _Route,
    result: BatchResult,
    claim_token: str,
    thr: Any,
    compiled_by_variant: dict[tuple[str, int | None], CompiledMessage],
    beat: Heartbeat,
    builder: ThreadPoolExecutor | None,
    flight: _Flight,
) -> None:
    """Send the batch in groups of ``send_group_size``: each group is prepared (its
    messages built meanwhile by ``builder``), marked ``sending`` in one statement
    (committed with the previous group's outcomes), sent message by message on the
    relays' connections, and its outcomes written together."""
    k = get_settings().send_group_size
    n = 0
    no_relay = False
    stop = _Stop(send_id)
    while n < len(rows) and not no_relay:
        group: list[Ready] = []
        while n < len(rows) and len(group) < k:
            prepared = _prepare(
                s,
                send_id,
                issue_id,
                list_id,
                rows[n],
                route,
                result,
                claim_token,
                thr,
                compiled_by_variant,
                builder,
            )
            if prepared is None:  # no relay may carry it: the rest goes back untouched
                no_relay = True
                break
            n += 1
            if isinstance(prepared, Ready):
                group.append(prepared)
        if group:
            marked_at = time.monotonic()
            flight.unsent = list(group)  # the mark may commit without our hearing of it
            taken = _mark_group(s, send_id, claim_token, group)
            s.commit()
            flight.committed()  # the previous group's outcomes went with this commit
            if len(taken) < len(group):
                left = [r.row[0] for r in group if r.row[0] not in taken]
                group = [r for r in group if r.row[0] in taken]
                state = s.scalar(select(Send.state).where(Send.id == send_id))
                if state != "sending":  # paused or cancelled: not one more transaction
                    result.stopped = state
                    release(s, left + [r[0] for r in rows[n:]])
                else:
                    result.lost_claim += len(left)  # our lease ran out: another has them
            flight.unsent = list(group)
            done = flight.unrecorded  # kept in memory until a commit has taken them
            back = _send_group(group, route, result, marked_at, beat, done, flight, stop)
            finish_group(s, done, claim_token)  # committed with the next group's mark
            hand_back(s, claim_token, back, cancelled=result.stopped == "cancelled")
            if result.stopped is not None:
                release_claim(s, claim_token)  # the rest of the batch, for a resume
                if result.stopped == "cancelled":  # what ended deferred will never go
                    skip_unsent(s, send_id)
                s.commit()
                flight.committed()
                return
            if len(done) + len(back) < len(group):
                # The lease may have run out while the group was under way: stop here, the
                # unsent rows come back to the pool (counted at risk) after the lease.
                result.lost_claim += len(group) - len(done) - len(back)
                return
            if back:  # every relay that may carry them went out mid-group
                result.no_relay += len(back)
                no_relay = True
    if no_relay:
        # No relay that may carry these messages is in service: give the rest back
        # untouched; the send pauses and heal.py resumes it when a relay answers.
        result.no_relay += len(rows) - n
        s.execute(
            update(Delivery)
            .where(
                Delivery.id.in_([r[0] for r in rows[n:]]),
                Delivery.claimed_by == claim_token,
                Delivery.state.in_(("queued", "deferred")),
            )
            .values(claimed_by=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        s.commit()


def _prepare(
    s: Session,
    send_id: int,
    issue_id: int,
    list_id: int | None,
    row: Any,
    route: _Route,
    result: BatchResult,
    claim_token: str,
    thr: Any,
    compiled_by_variant: dict[tuple[str, int | None], CompiledMessage],
    builder: ThreadPoolExecutor | None,
) -> Ready | bool | None:
    """Pick a relay, take the rate-limit and warm-up tokens and build the message.

    None: no relay in service may carry it. False: the row was dealt with here (given
    back for later, or failed); its statement commits with the group's mark."""
    cfg = get_settings()
    delivery_id, variant, attempts, subscriber_id, email, name = row[:6]
    ckey = (variant, row.subject_idx)
    compiled = compiled_by_variant.get(ckey)
    if compiled is None:  # once per batch, variant and subject, not per message
        compiled = compiled_by_variant[ckey] = compiled_for(
            issue_id, variant, subject=_subject(s, send_id, row.subject_idx)
        )
    from_domain = compiled.from_addr.rpartition("@")[2].strip(" >").lower()
    relay = route.pool.pick(from_domain, route.publication, avoid=row.relay if attempts else None)
    if relay is None:
        return None
    wait = thr.acquire(compiled.from_addr, email)
    # The relay's bucket: a wait is not a token, so after a short wait take one again.
    rwait = thr.acquire_relay(relay.name, relay.rate)
    while 0 < rwait <= cfg.max_throttle_sleep:
        time.sleep(rwait)
        rwait = thr.acquire_relay(relay.name, relay.rate)
    wait = max(wait, rwait)
    if wait > cfg.max_throttle_sleep:
        # Too long to wait here: give the row back with a due time, never stall.
        s.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.claimed_by == claim_token)
            .values(
                claimed_by=None,
                lease_until=None,
                next_attempt_at=utcnow() + dt.timedelta(seconds=wait),
            )
        )
        result.throttled += 1
        return False
    if wait > 0:
        time.sleep(wait)
    recipient = Recipient(
        delivery_id,
        email,
        name or "",
        delivery_token(delivery_id),
        unsubscribe_token(subscriber_id, list_id),
    )
    rcpt_domain = email.rpartition("@")[2].lower()
    plan = route.plan(s, from_domain)
    now = utcnow()
    if plan is not None and not warmup.reserve(s, plan, rcpt_domain, now):
        # Today's warm-up allowance (or this recipient domain's share) is used up.
        tomorrow = warmup.day_start(warmup.day_of(now) + dt.timedelta(days=1))
        s.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.claimed_by == claim_token)
            .values(claimed_by=None, lease_until=None, next_attempt_at=tomorrow)
        )
        result.warmup_deferred += 1
        return False
    msgid = compiled.message_id(delivery_id)
    built: Future[tuple[bytes, bool] | HeaderInjection] | Later
    if builder is not None:
        built = builder.submit(build, compiled, recipient)
    else:
        built = Later(compiled, recipient)  # built while the relay takes the one before
    return Ready(row, relay, msgid, recipient, compiled, built, from_domain, rcpt_domain, plan)


def _mark_group(s: Session, send_id: int, claim_token: str, group: list[Ready]) -> set[int]:
    """Mark the group ``sending`` in one statement; the ids it could mark.

    A row is marked only while this claim holds it with a current lease (renewed here)
    and while the send is ``sending``: once a pause, a cancel or another worker's claim
    has committed, none of the group is marked. Warm-up reservations of rows left out
    are given back."""
    now = utcnow()
    lease = now + dt.timedelta(seconds=get_settings().lease_seconds)
    if s.get_bind().dialect.name == "postgresql":
        taken = set(
            s.connection()
            .exec_driver_sql(
                queries.MARK_SENDING,
                (
                    lease,
                    queries.packed([r.row[0] for r in group]),
                    queries.packed([r.msgid for r in group]),
                    queries.packed([r.relay.name for r in group]),
                    claim_token,
                    now,
                    send_id,
                ),
            )
            .scalars()
        )
    else:
        taken = set()
        for r in group:
            took = s.execute(
                update(Delivery)
                .where(
                    Delivery.id == r.row[0],
                    Delivery.claimed_by == claim_token,
                    Delivery.state.in_(("queued", "deferred")),
                    Delivery.lease_until > now,
                    exists().where(Send.id == send_id, Send.state == "sending"),
                )
                .values(
                    state="sending",
                    attempts=Delivery.attempts + 1,
                    message_id=r.msgid,
                    relay=r.relay.name,
                    lease_until=lease,
                )
            )
            if took.rowcount == 1:  # type: ignore[attr-defined]
                taken.add(r.row[0])
    for r in group:
        if r.row[0] not in taken and r.plan is not None:
            warmup.unreserve(s, r.plan, r.rcpt_domain, now)
    return taken
