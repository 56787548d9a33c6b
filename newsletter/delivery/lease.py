"""Leases on deliveries: a worker claims a batch by writing its lease in one statement, keeps it
alive with a heartbeat while it sends, and loses it when it stops beating.

On PostgreSQL the claim is ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)``;
elsewhere the same update is guarded by the claim condition (SQLite serialises writers).
A lease that expires, because its worker died, makes the rows claimable again. Every
later write by the worker is fenced by its claim token and the lease's end, so a worker
that lost its lease cannot mark or record anything."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from newsletter.core.clock import now as utcnow
from newsletter.core.db import session_scope
from newsletter.core.process import worker_name
from newsletter.core.telemetry import CLAIM_LAG, LEASE_EXPIRIES
from newsletter.delivery import queries
from newsletter.models import Delivery, Send

log = logging.getLogger(__name__)


_WORKER = worker_name()


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
        seconds = max(1, int(lease_seconds))
        session.execute(text(queries.CLAIM_IDLE_TIMEOUT.format(seconds=seconds)))
        # Picked once: as a plain IN (subquery) the planner may rescan the LIMIT subquery
        # per row (a nested loop, typical right after a send's rows were inserted and
        # before they are analysed), claiming far more rows than the limit, slowly. A
        # materialised CTE is evaluated exactly once.
        picked = sub.cte("picked").prefix_with("MATERIALIZED")
        target = Delivery.id.in_(select(picked.c.id))
    else:
        target = Delivery.id.in_(sub.scalar_subquery())
    stmt = (
        update(Delivery)
        .where(target, _claimable(send_id, now))
        .values(claimed_by=token, lease_until=lease)
        .execution_options(synchronize_session=False)
    )
    if session.get_bind().dialect.name == "postgresql":
        # The rows the statement claimed, and which of them were mid-transaction: one
        # round trip instead of a SELECT by the (new, unique) token and an UPDATE that
        # almost always finds nothing.
        claimed = session.execute(stmt.returning(Delivery.id, Delivery.state)).all()
        ids = sorted(int(r[0]) for r in claimed)
        was_sending = any(r[1] == "sending" for r in claimed)
    else:  # (SQLite before 3.35 has no RETURNING)
        session.execute(stmt)
        ids = list(
            session.scalars(
                select(Delivery.id).where(Delivery.claimed_by == token).order_by(Delivery.id)
            )
        )
        was_sending = True
    if was_sending:
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


class Heartbeat(threading.Thread):
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
                    res: Any = s.execute(
                        update(Delivery)
                        .where(Delivery.id.in_(mine.scalar_subquery()))
                        .values(lease_until=now + dt.timedelta(seconds=self.lease))
                        .execution_options(synchronize_session=False)
                    )
                # Only a renewal that held on to rows counts: after a partition, the
                # database answers again but the rows' leases ran out and others may hold
                # them; a commit that renewed nothing must not let a group go on sending.
                if res.rowcount:
                    self.renewed = began
            except Exception as exc:  # the lease then runs out: fencing takes over
                log.warning("lease heartbeat failed: %s", exc.__class__.__name__)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


# One statement marks a group: it checks the send's state, so once a pause or cancel has
# committed no worker starts another group, and at most the rest of the group under way
# (k − 1 messages per batch) completes. It also requires the claim's lease to be current,
# and renews it: a claim whose commit was held up (a partition inside the claim
# transaction) reaches the database with a lease that has already run out, and then not
# one of its rows is sent (fencing by time, not only by claim token).


def release(s: Session, ids: list[int]) -> None:
    if ids:
        s.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids), Delivery.state == "queued")
            .values(claimed_by=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        s.commit()
