"""Claiming and sending batches of deliveries.

A worker *claims* up to ``batch_size`` deliveries of a send by writing a lease
(``claimed_by``, ``lease_until``) in one statement: on PostgreSQL
``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)``, elsewhere the same
update guarded by the claim condition (SQLite serialises writers).  A lease
that expires, because its worker died, makes the rows claimable again.

Each message moves ``queued → sending`` in the database *before* its SMTP
transaction and to its outcome after it. Messages are marked in groups of
``send_group_size`` (k) by one statement and their outcomes written by one
statement, so the only deliveries whose fate is uncertain after a crash are those
still ``sending``: at most k per worker process.  Policy for them (documented in
docs/delivery.md): when their lease expires they are sent again and flagged
``at_risk``; the send report counts them, so the possible duplicates are
measured, not guessed.

Suppression and unsubscribes are checked again for the whole batch right after
the claim, so a running send skips a person from the moment they leave.

Pause and cancel are obeyed between groups: the statement that marks a group
``sending`` also requires its send to be ``sending``, so once a pause or cancel
has committed no worker marks another group, and at most the rest of the group
already marked (fewer than k messages per worker process) goes out.

A delivery's Message-ID is the same on every attempt (its id and a salt fixed
per installation), so a copy re-sent after a crash can be dropped by receivers.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, text, update
from sqlalchemy.orm import Session

from newsletter.core.config import get_settings
from newsletter.core.db import engine, session_scope
from newsletter.core.process import worker_name
from newsletter.core.safety.headers import HeaderInjection
from newsletter.core.safety.signing import delivery_token, unsubscribe_token
from newsletter.core.telemetry import CLAIM_LAG, DELIVERIES, LEASE_EXPIRIES
from newsletter.delivery import warmup
from newsletter.delivery.assemble import CompiledMessage, Recipient
from newsletter.delivery.clock import now as utcnow
from newsletter.delivery.compiled import compiled_for
from newsletter.delivery.relays import RelayConfig, RelayPool, probe_due
from newsletter.delivery.sends import state_counts, transition
from newsletter.delivery.smtp import Outcome
from newsletter.delivery.throttle import throttle
from newsletter.models import Delivery, Send, Subscriber, Subscription, Suppression

__all__ = ["BatchResult", "claim", "maybe_finish", "process_batch", "worker_name"]

log = logging.getLogger(__name__)

_WORKER = worker_name()


@dataclass(slots=True)
class BatchResult:
    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    bounced: int = 0
    failed: int = 0
    skipped: int = 0
    throttled: int = 0
    lost_claim: int = 0
    #: deferrals because the relay could not be reached (refused, reset, timed out)
    unreachable: int = 0
    #: messages given back because no relay that may carry them is in service
    no_relay: int = 0
    #: messages left for a later day by the sending domain's warm-up
    warmup_deferred: int = 0
    #: relay name -> messages it carried (sent) in this batch
    by_relay: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None  # "paused" / "cancelled" when the batch stopped early
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def more(self) -> bool:
        return self.claimed > 0 and self.stopped is None


def _claimable(send_id: int, now: dt.datetime):  # type: ignore[no-untyped-def]
    return and_(
        Delivery.send_id == send_id,
        or_(
            and_(
                Delivery.state.in_(("queued", "deferred")),
                or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
                or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
            ),
            # A worker died inside an SMTP transaction: the lease expired.
            and_(Delivery.state == "sending", Delivery.lease_until < now),
        ),
    )


def claim(session: Session, send_id: int, limit: int, lease_seconds: int) -> tuple[str, list[int]]:
    """Lease up to ``limit`` deliveries for this worker; returns (claim token, ids).

    Every later write of the batch is conditional on still holding this claim, so a
    worker whose lease expired (a long stall) can never send a row that another
    worker has claimed since.
    """
    now = utcnow()
    token = f"{_WORKER}:{uuid.uuid4().hex[:8]}"
    lease = now + dt.timedelta(seconds=lease_seconds)
    sub = select(Delivery.id).where(_claimable(send_id, now)).order_by(Delivery.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        sub = sub.with_for_update(skip_locked=True)
        # A claim whose COMMIT never arrives (a partition mid-transaction) would hold its
        # rows locked until TCP gives up; the server ends such a transaction after one
        # lease instead, and the rows go back to the pool.
        session.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = "
                             f"'{max(1, int(lease_seconds))}s'"))
        # Picked once: as a plain IN (subquery) the planner may rescan the LIMIT subquery
        # per row (a nested loop, typical right after a send's rows were inserted and
        # before they are analysed), which claimed every row of a 3,000-reader send in one
        # batch and took 12 s doing it. A materialised CTE is evaluated exactly once.
        picked = sub.cte("picked").prefix_with("MATERIALIZED")
        target = Delivery.id.in_(select(picked.c.id))
    else:
        target = Delivery.id.in_(sub.scalar_subquery())
    session.execute(
        update(Delivery)
        .where(target, _claimable(send_id, now))
        .values(claimed_by=token, lease_until=lease)
        .execution_options(synchronize_session=False)
    )
    ids = list(
        session.scalars(
            select(Delivery.id).where(Delivery.claimed_by == token).order_by(Delivery.id)
        )
    )
    # Rows that were 'sending' when their lease expired are at risk of a duplicate.
    taken_over = session.execute(
        update(Delivery)
        .where(Delivery.claimed_by == token, Delivery.state == "sending")
        .values(at_risk=True, state="queued")
        .execution_options(synchronize_session=False)
    )
    if taken_over.rowcount:  # type: ignore[attr-defined]
        LEASE_EXPIRIES.inc(taken_over.rowcount)  # type: ignore[attr-defined]
    if ids:
        # Claim lag: how long the oldest claimed row had been due (its retry time, or
        # when the send started for a first attempt).
        due = session.scalar(
            select(func.min(func.coalesce(Delivery.next_attempt_at, Send.started_at)))
            .join(Send, Send.id == Delivery.send_id)
            .where(Delivery.claimed_by == token)
        )
        if due is not None:
            if due.tzinfo is None:
                due = due.replace(tzinfo=dt.UTC)
            CLAIM_LAG.observe(max((now - due).total_seconds(), 0.0))
    return token, ids


def _backoff(attempts: int) -> dt.timedelta:
    base = min(60 * (2 ** max(attempts - 1, 0)), 3600)
    return dt.timedelta(seconds=base * random.uniform(0.75, 1.25))


def process_batch(send_id: int, *, batch_size: int | None = None) -> BatchResult:
    """Claim one batch of ``send_id`` and send it. Safe to call concurrently and repeatedly."""
    cfg = get_settings()
    result = BatchResult()
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
    try:
        probe_due()  # relays out of service whose probe is due (claimed: one prober each)
    except Exception:  # a probe must never stop a batch
        log.exception("relay probe failed")
    pool = RelayPool(cfg)
    try:
        _send_rows(send_id, issue_id, list_id, todo, _Route(pool, publication), result, claim_token)
    finally:
        pool.close()
    _maybe_auto_pause(send_id, result)
    return result


@dataclass(slots=True)
class _Route:
    """Where a batch's messages go: its relays, its publication, the warm-up plans."""

    pool: RelayPool
    publication: str | None
    plans: dict[str, warmup.Plan | None] = field(default_factory=dict)

    def plan(self, s: Session, from_domain: str) -> warmup.Plan | None:
        if from_domain not in self.plans:
            self.plans[from_domain] = warmup.active_plan(s, from_domain)
        return self.plans[from_domain]


def _maybe_auto_pause(send_id: int, result: BatchResult) -> None:
    """Pause the send when too many messages of a batch failed, or no relay may carry it."""
    cfg = get_settings()
    if result.no_relay and result.stopped is None:
        _pause_for_relay(
            send_id,
            result,
            f"auto-paused: no relay that may carry this send is in service "
            f"({result.no_relay} messages waiting); the relays are probed and the send "
            "resumes by itself when one answers / 没有可用的发信服务器，恢复后自动继续",
        )
        return
    attempts = result.sent + result.deferred + result.bounced
    failures = result.deferred + result.bounced
    if attempts < cfg.auto_pause_min_attempts or failures / attempts < cfg.auto_pause_error_rate:
        return
    relay = result.unreachable * 2 > failures  # mostly could not reach the relay
    reason = (
        f"auto-paused: {failures} of {attempts} messages in one batch failed "
        f"(threshold {cfg.auto_pause_error_rate:.0%}); "
        + (
            "the relay could not be reached: it is probed and the send resumes by itself "
            "when it answers / 发信服务器无法连接，恢复后自动继续"
            if relay
            else "check the relay, then resume"
        )
    )
    _pause_for_relay(send_id, result, reason, relay=relay)


def _pause_for_relay(send_id: int, result: BatchResult, reason: str, *, relay: bool = True) -> None:
    from newsletter.core.errors import StateError
    from newsletter.delivery.alerts import notify

    with session_scope() as s:
        try:
            changed = transition(s, send_id, "pause", error=reason)
        except StateError:
            return
        if changed:
            result.stopped = "paused"
            if relay:
                from newsletter.delivery.heal import mark_relay_pause

                mark_relay_pause(s, send_id)
            notify(
                s,
                "auto_paused",
                f"send {send_id} auto-paused",
                reason,
                key=f"paused:{send_id}:{utcnow().isoformat(timespec='minutes')}",
            )


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
            s.execute(text("SET synchronous_commit TO OFF"))
        beat = _Heartbeat(claim_token, get_settings().lease_seconds)
        beat.start()
        # Builds and DKIM-signs messages while this thread waits on the database and
        # the relays (the RSA signature and the body hash release the GIL).
        builder = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="build") if build_ahead() else None
        )
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
            )
        except BaseException:
            # The first error is the one that matters: a rollback that fails too (the
            # connection is gone) must not replace it with a PendingRollbackError.
            try:
                s.rollback()
                if pg:
                    s.execute(text("RESET synchronous_commit"))
                    s.commit()
            except Exception as cleanup:
                log.debug("cleanup after a failed batch: %s", cleanup)
            raise
        finally:
            beat.stop()
            if builder is not None:
                builder.shutdown(wait=True, cancel_futures=True)
        s.commit()  # the last outcome
        if pg:
            s.execute(text("RESET synchronous_commit"))
            s.commit()


#: Set by the Celery worker (workers/celery_app.py) to its pool's process count.
POOL_ENV = "NL_WORKER_POOL_PROCESSES"


def build_ahead() -> bool:
    """Whether a batch builds its messages in a thread of its own, ahead of sending.

    It pays while the process would otherwise wait on the database and the relay with a
    core free: measured (B4) +8 points at one sending process per core, and −5 points
    at four per core, where the other processes fill those waits and the extra threads
    only contend for the cores."""
    procs = int(os.environ.get(POOL_ENV) or 1)
    return procs <= (os.cpu_count() or 1)


class _Heartbeat(threading.Thread):
    """Keeps this worker's lease on its batch while the process lives.

    Every third of the lease it moves ``lease_until`` forward on the rows this claim
    still holds (queued, deferred, or mid-transaction). A worker that dies stops
    beating, so its rows come back after one short lease, not after a long one; a
    worker cut off from the database cannot renew either, and since every message is
    first marked ``sending`` under this claim in the database, it cannot start
    another once its rows are taken over (fencing).
    """

    def __init__(self, token: str, lease_seconds: int) -> None:
        super().__init__(daemon=True, name=f"lease-{token[-8:]}")
        self.token, self.lease = token, lease_seconds
        self.every = max(0.5, lease_seconds / 3)
        self._stop_event = threading.Event()
        #: time.monotonic() just before the last renewal that committed (a lease then runs
        #: to at least this plus the lease length)
        self.renewed = float("-inf")

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            try:
                began = time.monotonic()
                with session_scope() as s:
                    now = utcnow()
                    mine = select(Delivery.id).where(
                        Delivery.claimed_by == self.token,
                        Delivery.state.in_(("queued", "deferred", "sending")),
                        Delivery.lease_until > now,  # a lease that ran out stays out
                    )
                    if s.get_bind().dialect.name == "postgresql":
                        # Never wait for the row the batch is writing this instant (it
                        # commits within milliseconds and is renewed next beat): waiting
                        # would hold the other rows' locks against the batch's next
                        # statement, a deadlock PostgreSQL breaks by aborting one side.
                        mine = mine.with_for_update(skip_locked=True)
                    s.execute(
                        update(Delivery)
                        .where(Delivery.id.in_(mine.scalar_subquery()))
                        .values(lease_until=now + dt.timedelta(seconds=self.lease))
                        .execution_options(synchronize_session=False)
                    )
                self.renewed = began
            except Exception as exc:  # the lease then runs out: fencing takes over
                log.warning("lease heartbeat failed: %s", exc.__class__.__name__)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def _subject(s: Session, send_id: int, idx: int | None) -> str | None:
    """The subject-test subject of ``idx`` (None: the issue's own subject)."""
    if idx is None:
        return None
    subjects = s.scalar(select(Send.subject_variants).where(Send.id == send_id))
    return subjects[idx] if subjects and 0 <= idx < len(subjects) else None


@dataclass(slots=True)
class _Ready:
    """A message built for one claimed row, waiting for its group's ``sending`` mark."""

    row: Any
    relay: RelayConfig
    msgid: str
    recipient: Recipient
    compiled: CompiledMessage
    #: the message and whether it is free of lines that begin with "." (or the header
    #: injection that refused it), built by the batch's builder
    built: Future[tuple[bytes, bool] | HeaderInjection]
    from_domain: str
    rcpt_domain: str
    plan: warmup.Plan | None


@dataclass(slots=True)
class _Done:
    """A message's outcome, written with the rest of its group."""

    ready: _Ready
    outcome: Outcome
    relay: str
    at: dt.datetime
    retry_now: bool


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
    beat: _Heartbeat,
    builder: ThreadPoolExecutor | None,
) -> None:
    """Send the batch in groups of ``send_group_size``: each group is prepared (its
    messages built meanwhile by ``builder``), marked ``sending`` in one statement
    (committed with the previous group's outcomes), sent message by message on the
    relays' connections, and its outcomes written together."""
    k = get_settings().send_group_size
    n = 0
    no_relay = False
    while n < len(rows) and not no_relay:
        group: list[_Ready] = []
        while n < len(rows) and len(group) < k:
            prepared = _prepare(s, send_id, issue_id, list_id, rows[n], route, result,
                                claim_token, thr, compiled_by_variant, builder)
            if prepared is None:  # no relay may carry it: the rest goes back untouched
                no_relay = True
                break
            n += 1
            if isinstance(prepared, _Ready):
                group.append(prepared)
        if group:
            marked_at = time.monotonic()
            taken = _mark_group(s, send_id, claim_token, group)
            s.commit()
            if len(taken) < len(group):
                left = [r.row[0] for r in group if r.row[0] not in taken]
                group = [r for r in group if r.row[0] in taken]
                state = s.scalar(select(Send.state).where(Send.id == send_id))
                if state != "sending":  # paused or cancelled: not one more transaction
                    result.stopped = state
                    _release(s, left + [r[0] for r in rows[n:]])
                else:
                    result.lost_claim += len(left)  # our lease ran out: another has them
            done = _send_group(group, route, result, marked_at, beat)
            _finish_group(s, done)  # committed with the next group's mark
            if result.stopped is not None:
                s.commit()
                return
            if len(done) < len(group):
                # The lease may have run out while the group was under way: stop here, the
                # unsent rows come back to the pool (counted at risk) after the lease.
                result.lost_claim += len(group) - len(done)
                return
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
) -> _Ready | bool | None:
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
    if builder is not None:
        built = builder.submit(_build, compiled, recipient)
    else:
        built = Future()
        built.set_result(_build(compiled, recipient))
    return _Ready(row, relay, msgid, recipient, compiled, built, from_domain, rcpt_domain, plan)


def _mark_group(s: Session, send_id: int, claim_token: str, group: list[_Ready]) -> set[int]:
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
                _MARK_SENDING_PG,
                (
                    lease,
                    [r.row[0] for r in group],
                    [r.msgid for r in group],
                    [r.relay.name for r in group],
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
                .values(state="sending", attempts=Delivery.attempts + 1, message_id=r.msgid,
                        relay=r.relay.name, lease_until=lease)
            )
            if took.rowcount == 1:  # type: ignore[attr-defined]
                taken.add(r.row[0])
    for r in group:
        if r.row[0] not in taken and r.plan is not None:
            warmup.unreserve(s, r.plan, r.rcpt_domain, now)
    return taken


def _send_group(
    group: list[_Ready], route: _Route, result: BatchResult, marked_at: float, beat: _Heartbeat
) -> list[_Done]:
    """Send a marked group, one message after another; stops early when the lease may
    have run out (fencing by time: past it, another worker may hold these rows).

    Messages were built (and DKIM-signed) by the batch's builder thread since their
    rows were prepared, while this thread talks to the database and the relays."""
    cfg = get_settings()
    # A safety margin against clock skew between hosts and a slow final reply.
    margin = cfg.lease_seconds * 0.25
    done: list[_Done] = []
    for i, r in enumerate(group):
        message = r.built.result()
        if time.monotonic() > max(marked_at, beat.renewed) + cfg.lease_seconds - margin:
            log.warning(
                "lease may have run out mid-group: %d messages left unsent", len(group) - i
            )
            break
        relay = r.relay
        if relay.name in route.pool.out:  # taken out of service earlier in this group
            other = route.pool.pick(r.from_domain, route.publication, avoid=relay.name)
            relay = other if other is not None else relay
        if isinstance(message, HeaderInjection):
            # The builder's second wall: a CR/LF in a header value is never written.
            outcome = Outcome("failed", None, str(message)[:500])
        else:
            outcome = route.pool.connection(relay).send(
                f"bounces+{r.recipient.token}@{cfg.bounce_domain}",
                r.recipient.email,
                message[0],
                signer=r.compiled.signer,
                dot_free=message[1],
            )
        retry_now = False
        if outcome.state == "deferred":
            eligible = route.pool.eligible(r.from_domain, route.publication)
            route.pool.report(relay, outcome, alternatives=len(eligible) > 1)
            # Failover: each other relay in service gets one prompt try before back-off.
            others = [
                x for x in route.pool.usable(r.from_domain, route.publication) if x != relay
            ]
            retry_now = bool(others) and r.row[2] < len(others)
        done.append(_Done(r, outcome, relay.name, utcnow(), retry_now))
        DELIVERIES.labels(outcome=outcome.state, relay=relay.name).inc()
        setattr(result, outcome.state, getattr(result, outcome.state) + 1)
        if outcome.state == "sent":
            result.by_relay[relay.name] = result.by_relay.get(relay.name, 0) + 1
        if outcome.code is None and outcome.reply.startswith("connection"):
            result.unreachable += 1
    return done


def _build(compiled: CompiledMessage, recipient: Recipient) -> tuple[bytes, bool] | HeaderInjection:
    """(the message, whether no line of it begins with "."), or the refusal."""
    try:
        _msgid, message, dot_free = compiled.build_wire(recipient)
    except HeaderInjection as exc:
        return exc
    return message, dot_free


def _finish_group(s: Session, done: list[_Done]) -> None:
    """Write a group's outcomes: the sent ones in one statement, the others one by one."""
    cfg = get_settings()
    sent = [d for d in done if d.outcome.state == "sent"]
    if sent and s.get_bind().dialect.name == "postgresql":
        s.connection().exec_driver_sql(
            _MARK_SENT_PG,
            (
                [d.ready.row[0] for d in sent],
                [d.at for d in sent],
                [d.outcome.code for d in sent],
                [d.outcome.reply for d in sent],
                [d.relay for d in sent],
            ),
        )
        rest = [d for d in done if d.outcome.state != "sent"]
    else:
        rest = done
    for d in rest:
        _record(s, d.ready.row[0], d.ready.row[2] + 1, d.outcome, d.ready.row[4],
                cfg.max_attempts, d.retry_now, relay=d.relay, now=d.at)


# One statement marks a group: it checks the send's state, so once a pause or cancel has
# committed no worker starts another group, and at most the rest of the group under way
# (k − 1 messages per batch) completes. It also requires the claim's lease to be current,
# and renews it: a claim whose commit was held up (a partition inside the claim
# transaction) reaches the database with a lease that has already run out, and then not
# one of its rows is sent (fencing by time, not only by claim token).
_MARK_SENDING_PG = (
    "UPDATE delivery AS d SET state = 'sending', attempts = d.attempts + 1, "
    "message_id = v.mid, relay = v.relay, lease_until = %s "
    "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS v(id, mid, relay) "
    "WHERE d.id = v.id AND d.claimed_by = %s AND d.state IN ('queued', 'deferred') "
    "AND d.lease_until > %s "
    "AND EXISTS (SELECT 1 FROM send WHERE send.id = %s AND send.state = 'sending') "
    "RETURNING d.id"
)
_MARK_SENT_PG = (
    "UPDATE delivery AS d SET state = 'sent', sent_at = v.at, last_code = v.code, "
    "last_reply = v.reply, relay = v.relay, claimed_by = NULL, lease_until = NULL "
    "FROM unnest(%s::bigint[], %s::timestamptz[], %s::int[], %s::text[], %s::text[]) "
    "AS v(id, at, code, reply, relay) WHERE d.id = v.id"
)


def _record(
    s: Session,
    delivery_id: int,
    attempts: int,
    o: Outcome,
    email: str,
    max_attempts: int,
    retry_now: bool = False,
    *,
    relay: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    now = now or utcnow()
    values: dict[str, object] = {
        "last_code": o.code,
        "last_reply": o.reply,
        "claimed_by": None,
        "lease_until": None,
    }
    if relay is not None:  # the relay that carried this attempt (failover may change it)
        values["relay"] = relay
    if o.state == "sent":
        values.update(state="sent", sent_at=now)
    elif o.state == "failed":  # refused before a byte went out (a header injection)
        values.update(state="failed")
    elif o.state == "bounced":
        values.update(state="bounced")
        from newsletter.audience.service import suppress

        suppress(
            s, email, "hard_bounce", note=f"{o.code} {o.reply}"[:1000], delivery_id=delivery_id
        )
        from newsletter.tracking.events import record  # tracking: a bounce event for the rollups

        record(s, "bounce", delivery_id, rule=f"smtp {o.code}")
    elif attempts >= max_attempts:
        values.update(state="failed")
    else:
        # retry_now: failover, the next attempt goes to another relay at once
        if o.maybe_delivered:
            values["at_risk"] = True  # the relay may have the message: a retry is counted
        values.update(
            state="deferred", next_attempt_at=now if retry_now else now + _backoff(attempts)
        )
    s.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))
    if values.get("state") == "failed":
        _suppress_if_always_failing(s, delivery_id, email)


def _suppress_if_always_failing(s: Session, delivery_id: int, email: str) -> None:
    """Soft bounces that never clear: after N consecutive sends ending in 'failed' for
    this subscriber, suppress the address (email-delivery.md: repeated soft bounces)."""
    n = get_settings().soft_bounce_sends
    sub_id = s.scalar(select(Delivery.subscriber_id).where(Delivery.id == delivery_id))
    last = list(
        s.scalars(
            select(Delivery.state)
            .where(
                Delivery.subscriber_id == sub_id, Delivery.state.in_(("sent", "failed", "bounced"))
            )
            .order_by(Delivery.send_id.desc())
            .limit(n)
        )
    )
    if len(last) == n and all(st == "failed" for st in last):
        from newsletter.audience.service import suppress

        suppress(
            s,
            email,
            "hard_bounce",
            note=f"soft bounces in {n} consecutive sends",
            delivery_id=delivery_id,
        )


def _release(s: Session, ids: list[int]) -> None:
    if ids:
        s.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids), Delivery.state == "queued")
            .values(claimed_by=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        s.commit()


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
    """Mark the send finished if every delivery is in a terminal state."""
    with session_scope() as s:
        n, _ = pending(s, send_id)
        if n:
            return False
        state = s.scalar(select(Send.state).where(Send.id == send_id))
        if state != "sending":
            return state == "finished"
        transition(s, send_id, "finish")
        counts = state_counts(s, send_id)
        log.info("send %s finished: %s", send_id, counts)
        send = s.get(Send, send_id)
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
            )
        return True
