"""What became of each message, written back in one statement per group: sent, deferred with
back-off, bounced or failed; an address that always fails is suppressed; a send whose relays
all fail is paused by itself (and told to ops)."""

from __future__ import annotations

import datetime as dt
import random
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from newsletter.core.clock import now as utcnow
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.events import emit, listening
from newsletter.core.safety.headers import HeaderInjection
from newsletter.delivery import queries, warmup
from newsletter.delivery.assemble import CompiledMessage, Recipient
from newsletter.delivery.relay_config import RelayConfig
from newsletter.delivery.sends import transition
from newsletter.delivery.smtp import Outcome
from newsletter.models import Delivery


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


def _backoff(attempts: int) -> dt.timedelta:
    base = min(60 * (2 ** max(attempts - 1, 0)), 3600)
    return dt.timedelta(seconds=base * random.uniform(0.75, 1.25))


def maybe_auto_pause(send_id: int, result: BatchResult) -> None:
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
    kind: str | None = None
    if result.unreachable * 2 > failures:  # mostly could not reach the relay
        kind = "relay"
    elif (result.deferred - result.unreachable) * 2 > failures and cfg.auto_resume_4xx:
        kind = "4xx"  # mostly refused for now
    reason = f"auto-paused: {failures} of {attempts} messages in one batch failed " + (
        f"(threshold {cfg.auto_pause_error_rate:.0%}); "
    )
    if kind == "relay":
        reason += (
            "the relay could not be reached: it is probed and the send resumes by itself "
            "when it answers / 发信服务器无法连接，恢复后自动继续"
        )
    elif kind == "4xx":
        reason += (
            "the relay refused them for now (4xx): it is probed with a test recipient and the "
            "send resumes by itself when one is accepted / 发信服务器暂时拒收（4xx），"
            "测试收件人被接受后自动继续"
        )
    else:
        reason += "check the relay, then resume / 请检查发信服务器后手动恢复"
    _pause_for_relay(send_id, result, reason, kind=kind)


def _pause_for_relay(
    send_id: int, result: BatchResult, reason: str, *, kind: str | None = "relay"
) -> None:
    from newsletter.core.errors import StateError
    from newsletter.delivery.alerts import notify

    with session_scope() as s:
        try:
            changed = transition(s, send_id, "pause", error=reason)
        except StateError:
            return
        if changed:
            result.stopped = "paused"
            if kind is not None:
                from newsletter.delivery.heal import mark_relay_pause

                mark_relay_pause(s, send_id, kind)
            # One alert per pause: only the worker whose transition paused the send gets
            # here. A pause that will not heal by itself says it needs a person.
            notify(
                s,
                "auto_paused",
                f"send {send_id} auto-paused",
                reason,
                key=f"paused:{send_id}:{utcnow().isoformat()}",
                once=kind is not None,
                needs_person=kind is None,
            )


class Later:
    """A message built on first demand, by the sending thread itself: the group loop
    builds the next message while the relay takes this one's body (``meanwhile``), so
    the reply is usually waiting by the time it is read (no thread to hand over to)."""

    __slots__ = ("_value", "compiled", "recipient")

    def __init__(self, compiled: CompiledMessage, recipient: Recipient) -> None:
        self.compiled, self.recipient = compiled, recipient
        self._value: tuple[bytes, bool] | HeaderInjection | None = None

    def done(self) -> bool:
        return self._value is not None

    def result(self) -> tuple[bytes, bool] | HeaderInjection:
        if self._value is None:
            self._value = build(self.compiled, self.recipient)
        return self._value


def build(compiled: CompiledMessage, recipient: Recipient) -> tuple[bytes, bool] | HeaderInjection:
    """(the message, whether no line of it begins with "."), or the refusal."""
    try:
        _msgid, message, dot_free = compiled.build_wire(recipient)
    except HeaderInjection as exc:
        return exc
    return message, dot_free


@dataclass(slots=True, eq=False)
class Ready:
    """A message built for one claimed row, waiting for its group's ``sending`` mark.
    Compared by identity: a row's Ready is in a group's in-flight list or not (field-wise
    equality compared whole rows and messages for every ``in`` and ``remove``)."""

    row: Any
    relay: RelayConfig
    msgid: str
    recipient: Recipient
    compiled: CompiledMessage
    #: the message and whether it is free of lines that begin with "." (or the header
    #: injection that refused it), built by the batch's builder or by the sending thread
    built: Future[tuple[bytes, bool] | HeaderInjection] | Later
    from_domain: str
    rcpt_domain: str
    plan: warmup.Plan | None


@dataclass(slots=True)
class Done:
    """A message's outcome, written with the rest of its group."""

    ready: Ready
    outcome: Outcome
    relay: str
    at: dt.datetime
    retry_now: bool


def finish_group(s: Session, done: list[Done], claim_token: str) -> int:
    """Write a group's outcomes: the sent ones in one statement, the others one by one.

    Fenced by the claim: only rows this claim still holds ``sending`` are written (a row
    another worker took over after our lease ran out is theirs, and counted at risk).
    Returns how many were written."""
    cfg = get_settings()
    # Withdrawn before the body (the lease may have run out): nothing reached the relay, so
    # the row goes back as it was before the mark, like a message never sent (no attempt
    # counted, not at risk, no step towards failing or a soft-bounce suppression).
    withdrawn = [d.ready for d in done if d.outcome.abandoned]
    written = hand_back(s, claim_token, withdrawn) if withdrawn else 0
    done = [d for d in done if not d.outcome.abandoned]
    sent = [d for d in done if d.outcome.state == "sent"]
    #: delivery id -> its send, for the rows recorded as sent
    delivered: dict[int, int | None] = {}
    #: the endpoints listening for ``message.delivered``, when a statement already read them
    endpoints: list[int] | None = None
    if sent and s.get_bind().dialect.name == "postgresql":
        marked = (
            s.connection()
            .exec_driver_sql(
                queries.MARK_SENT,
                (
                    queries.packed([d.ready.row[0] for d in sent]),
                    queries.packed([d.at for d in sent]),
                    queries.packed([d.outcome.code for d in sent]),
                    queries.packed([d.outcome.reply for d in sent]),
                    queries.packed([d.relay for d in sent]),
                    claim_token,
                ),
            )
            .all()
        )
        written += len(marked)
        delivered.update((int(r[0]), int(r[1])) for r in marked)
        if marked:  # the statement read who listens (the same for every row)
            endpoints = [int(e) for e in marked[0][2] or ()]
        rest = [d for d in done if d.outcome.state != "sent"]
    else:
        rest = done
    for d in rest:
        n = _record(
            s,
            d.ready.row[0],
            d.ready.row[2] + 1,
            d.outcome,
            d.ready.row[4],
            cfg.max_attempts,
            d.retry_now,
            relay=d.relay,
            now=d.at,
            claim_token=claim_token,
        )
        written += n
        if n and d.outcome.state == "sent":
            delivered[d.ready.row[0]] = None
    if delivered:
        _emit_delivered(s, [d for d in sent if d.ready.row[0] in delivered], delivered, endpoints)
    return written


def _emit_delivered(
    s: Session, done: list[Done], send_of: dict[int, int | None], endpoints: list[int] | None
) -> None:
    """``message.delivered`` for the rows just recorded as sent (the relay took them).
    ``send_of``: each row's send where the statement that recorded it said so;
    ``endpoints``: who listens, when that statement read it too (else one short query).
    Nothing more is read or built unless an endpoint asked for the event (most installs
    have none)."""
    if endpoints is None:
        endpoints = listening(s, "message.delivered")
    if not endpoints:
        return
    missing = [i for i, send_id in send_of.items() if send_id is None]
    if missing:
        send_of.update(
            s.execute(select(Delivery.id, Delivery.send_id).where(Delivery.id.in_(missing))).all()
        )
    emit(
        s,
        "message.delivered",
        [
            (
                {
                    "send_id": send_of.get(d.ready.row[0]),
                    "delivery_id": d.ready.row[0],
                    "subscriber_id": d.ready.row[3],
                    "email": d.ready.row[4],
                    "smtp_code": d.outcome.code,
                    "message_id": d.ready.msgid,
                },
                d.ready.row[3],
            )
            for d in sorted(done, key=lambda d: d.ready.row[0])
        ],
        endpoints=endpoints,
    )


def hand_back(s: Session, claim_token: str, ready: list[Ready], *, cancelled: bool = False) -> int:
    """Give back rows marked ``sending`` by this claim whose message never went out (the
    send was paused, the relay chosen for it was taken out mid-group, or the batch lost
    its database before sending them): as they were before the mark, due now, not at
    risk; of a cancelled send, skipped as cancelled. Fenced by the claim. Their warm-up
    units are given back too."""
    if not ready:
        return 0
    now = utcnow()
    values: dict[str, Any] = {
        "state": case((Delivery.attempts > 1, "deferred"), else_="queued"),
        "attempts": Delivery.attempts - 1,
        "claimed_by": None,
        "lease_until": None,
    }
    if cancelled:
        values.update(state="skipped", last_reply="cancelled / 已取消")
    res = s.execute(
        update(Delivery)
        .where(
            Delivery.id.in_([r.row[0] for r in ready]),
            Delivery.claimed_by == claim_token,
            Delivery.state == "sending",
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    for r in ready:
        if r.plan is not None:
            warmup.unreserve(s, r.plan, r.rcpt_domain, now)
    return int(res.rowcount)  # type: ignore[attr-defined]


def release_claim(s: Session, claim_token: str) -> None:
    """End this claim's lease on the rows it holds and has not marked (fenced)."""
    s.execute(
        update(Delivery)
        .where(Delivery.claimed_by == claim_token, Delivery.state.in_(("queued", "deferred")))
        .values(claimed_by=None, lease_until=None)
        .execution_options(synchronize_session=False)
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
    claim_token: str | None = None,
) -> int:
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
        from newsletter.tracking.rollups import record  # tracking: a bounce event for the rollups

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
    target = update(Delivery).where(Delivery.id == delivery_id)
    if claim_token is not None:  # fenced: only while this claim holds the row mid-send
        target = target.where(Delivery.claimed_by == claim_token, Delivery.state == "sending")
    n = int(s.execute(target.values(**values)).rowcount)  # type: ignore[attr-defined]
    if values.get("state") == "failed":
        _suppress_if_always_failing(s, delivery_id, email)
    return n


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
