"""Sending one marked group of a batch (``batch``): message after message on the relays'
connections, each outcome kept as soon as it is known.

Pause and cancel are obeyed before every message: the loop reads the stop flag that the
state change raises (``sends.stop_flag``), so once a pause or cancel has committed a worker
finishes at most the message on the wire and gives the rest of its group back unsent. As a
second wall, the statement that marks a group ``sending`` also requires its send to be
``sending`` (``batch._mark_group``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.core.clock import now as utcnow
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.safety.headers import HeaderInjection
from newsletter.core.safety.signing import bounce_address
from newsletter.core.telemetry import DELIVERIES
from newsletter.delivery import warmup
from newsletter.delivery.lease import Heartbeat
from newsletter.delivery.outcomes import BatchResult, Done, Later, Ready
from newsletter.delivery.recovery import _Flight
from newsletter.delivery.relays import RelayPool, down_relays
from newsletter.delivery.sends import stop_key
from newsletter.delivery.smtp import Outcome
from newsletter.models import Send

log = logging.getLogger(__name__)


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


def _send_group(
    group: list[Ready],
    route: _Route,
    result: BatchResult,
    marked_at: float,
    beat: Heartbeat,
    done: list[Done],
    flight: _Flight,
    stop: _Stop,
) -> list[Ready]:
    """Send a marked group, one message after another, appending each outcome to ``done``
    as soon as it is known; stops early when the lease may have run out (fencing by time:
    past it, another worker may hold these rows), and before any message once the send
    is paused or cancelled. Returns the messages to give back unsent: the send stopped,
    or their relay went out of service mid-group and no other may carry them.

    Messages are built (and DKIM-signed) by the batch's builder thread since their rows
    were prepared, or (``Later``) by this thread while the relay takes the previous
    message's body."""
    cfg = get_settings()
    # A safety margin against clock skew between hosts and a slow final reply.
    margin = cfg.lease_seconds * 0.25

    def leased() -> bool:
        return time.monotonic() <= max(marked_at, beat.renewed) + cfg.lease_seconds - margin

    back: list[Ready] = []
    for i, r in enumerate(group):
        message = r.built.result()
        if not leased():
            log.warning("lease may have run out mid-group: %d messages left unsent", len(group) - i)
            break
        stopped = stop()
        if stopped is not None:  # paused or cancelled: not one more transaction
            result.stopped = stopped
            back.extend(group[i:])
            break
        relay = r.relay
        if relay.name in route.pool.out or relay.name in _down():
            # Taken out of service since the message was prepared (by this worker or
            # another): never wait on it again; another relay, or back to the pool.
            other = route.pool.pick(r.from_domain, route.publication, avoid=relay.name)
            if other is None or other.name == relay.name:
                back.append(r)
                continue
            relay = other
        if isinstance(message, HeaderInjection):
            # The builder's second wall: a CR/LF in a header value is never written.
            outcome = Outcome("failed", None, str(message)[:500])
        else:
            flight.unsent.remove(r)  # from here on, it may be on the wire
            # The next message's envelope (never its body) rides behind this one's final
            # dot when it is meant for the same relay: one wait a message, not two.
            nxt = group[i + 1] if i + 1 < len(group) else None
            later = nxt.built if nxt is not None and isinstance(nxt.built, Later) else None
            outcome = route.pool.connection(relay).send(
                bounce_address(r.recipient.token),
                r.recipient.email,
                message[0],
                signer=r.compiled.signer,
                dot_free=message[1],
                proceed=leased,  # asked again once the relay waits for the body
                then=(
                    (bounce_address(nxt.recipient.token), nxt.recipient.email)
                    if nxt is not None and nxt.relay.name == relay.name
                    else None
                ),
                meanwhile=later.result if later is not None and not later.done() else None,
            )
        if r in flight.unsent:
            flight.unsent.remove(r)
        finished = Done(r, outcome, relay.name, utcnow(), False)
        done.append(finished)  # known before anything else can fail
        if outcome.abandoned:  # the lease may have run out: not one more message
            log.warning("lease may have run out mid-group: %d messages left unsent", len(group) - i)
            break
        if outcome.state == "deferred":
            try:
                eligible = route.pool.eligible(r.from_domain, route.publication)
                route.pool.report(relay, outcome, alternatives=len(eligible) > 1)
                # Failover: each other relay in service gets one prompt try before back-off.
                others = [
                    x for x in route.pool.usable(r.from_domain, route.publication) if x != relay
                ]
            except Exception as exc:  # relay bookkeeping never costs an outcome
                log.warning(
                    "relay %s: its state could not be written: %s",
                    relay.name,
                    exc.__class__.__name__,
                )
                others = []
            finished.retry_now = bool(others) and r.row[2] < len(others)
        _counter(outcome.state, relay.name).inc()
        setattr(result, outcome.state, getattr(result, outcome.state) + 1)
        if outcome.state == "sent":
            result.by_relay[relay.name] = result.by_relay.get(relay.name, 0) + 1
        if outcome.code is None and (outcome.timed_out or outcome.reply.startswith("connection")):
            result.unreachable += 1
    return back


class _Stop:
    """Whether the send has left ``sending`` (paused, cancelled), asked before every
    message: after a pause or cancel has committed, a worker process finishes at most
    the message already on the wire.

    With Redis, the flag ``sends.stop_flag`` raises before the state change commits is
    heard by the process's listener (``stopwatch``): a dictionary lookup a message. While
    the listener cannot vouch for itself, the flag key is read instead (one GET). Only
    when the flag is up is the database asked. Without Redis (embedded mode) the database
    is asked at most every 0.2 s."""

    EVERY = 0.2

    def __init__(self, send_id: int) -> None:
        from newsletter.delivery.stopwatch import watcher

        self.send_id = send_id
        self.key = stop_key(send_id) if get_settings().redis_url else None
        self._watcher = watcher() if self.key is not None else None
        #: the listener's generation under which the flag key was last read
        self._read_under: int | None = None
        #: what that read said
        self._got: str | None = None
        self._next = 0.0

    def _flag(self) -> str | None:
        from newsletter.core.redis import redis_client

        w = self._watcher
        generation = w.generation() if w is not None else None
        if w is not None and generation is not None and generation == self._read_under:
            # Messages arrive in order, so anything heard is newer than the GET below.
            known, state = w.heard(self.send_id)
            return state if known else self._got
        try:
            raw = redis_client().get(self.key or "")
        except Exception:  # Redis down: groups still stop at their mark
            return None
        self._got = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
        self._read_under = generation
        return self._got

    def __call__(self) -> str | None:
        if self.key is not None:
            if self._flag() is None:
                return None
        else:
            now = time.monotonic()
            if now < self._next:
                return None
            self._next = now + self.EVERY
        try:
            with session_scope() as s:
                state = s.scalar(select(Send.state).where(Send.id == self.send_id))
        except Exception:  # the group's own fence still holds
            return None
        return None if state == "sending" else str(state or "missing")


#: (outcome, relay) -> its child of the DELIVERIES counter (``labels`` takes a lock
#: and builds its key on every call; the send loop counts every message)
_COUNTERS: dict[tuple[str, str], Any] = {}


def _counter(state: str, relay: str) -> Any:
    child = _COUNTERS.get((state, relay))
    if child is None:
        child = _COUNTERS[(state, relay)] = DELIVERIES.labels(outcome=state, relay=relay)
    return child


def _down() -> dict[str, Any]:
    """The relays out of service (cached for a second); none when that cannot be read."""
    try:
        return down_relays()
    except Exception:
        return {}
