"""Relay outages heal themselves.

With several relays (delivery/relays.py) each relay is taken out and brought back
on its own and the send goes on through the others; a send pauses itself only
when *no* relay that may carry it is in service, and the probe below then covers
every relay that may carry it: the send resumes when any of them answers.

When most of a batch fails to *connect* to the relay (refused, reset, timed out),
the engine pauses the send and records ``auto_paused_at`` with ``auto_pause_kind``
``relay``; when most of it was refused *for now* (4xx: greylisting, a rate limit, a
full queue) it does the same with ``4xx`` (``auto_resume_4xx``). An auto-pause for
bounces (5xx) is left for a person: resending would not help.
:func:`heal` then probes the relay (connect, EHLO, QUIT; for a 4xx pause a test
transaction up to RCPT, which must be accepted), first after
``relay_probe_seconds`` and then with doubling waits, at most 5 minutes apart.
When the relay answers, the send resumes, and the deliveries deferred by the
outage are due at once, so nothing waits out its retry back-off. After
``auto_resume_limit_seconds`` the send stays paused, with the reason stored and
ops alerted (webhook and console: never only through the relay that is down).

The tick calls :func:`heal` in Celery mode; :func:`~.run.drive_inline` calls it
in the embedded mode. Two callers at once are safe: the resume is a conditional
transition, and only the caller whose probe update wins acts.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.delivery.alerts import notify
from newsletter.delivery.relay_config import load_relays
from newsletter.delivery.sends import transition
from newsletter.models import Delivery, RelayState, Send, utcnow

__all__ = ["RELAY_PAUSE", "heal", "mark_relay_pause", "probe_for_send", "probe_rcpt_for_send"]

log = logging.getLogger(__name__)
RELAY_PAUSE = "relay unreachable"
MAX_GAP = 300.0


def probe_for_send(send_id: int, now: dt.datetime) -> tuple[bool, str]:
    """(a relay answers, detail) for the relays that may carry ``send_id``.

    Each relay that may carry the send and is out of service is probed now; the
    send can go on as soon as one of them is in service.
    """
    from newsletter.delivery.relay_config import route
    from newsletter.delivery.relays import down_relays, probe_due
    from newsletter.delivery.warmup import from_domain_of

    with session_scope() as s:
        domain, publication = from_domain_of(s, send_id)
    relays = route(load_relays(), domain, publication)
    names = {r.name for r in relays}
    back = probe_due(now, names=names, force=True)
    down = down_relays(fresh=True)
    usable = [r.name for r in relays if r.name not in down]
    if usable:
        return True, "in service: " + ", ".join(usable) + (
            f" (brought back: {', '.join(back)})" if back else ""
        )
    with session_scope() as s:
        errors = [
            f"{n}: {e}"
            for n, e in s.execute(
                select(RelayState.name, RelayState.last_error).where(RelayState.name.in_(names))
            )
        ]
    return False, "; ".join(errors)[:300] or "no relay answers"


def probe_rcpt_for_send(send_id: int) -> tuple[bool, str]:
    """(a relay accepts a test RCPT, detail) for the relays in service that may carry
    ``send_id``: to ``probe_rcpt`` when set, else to one of the send's deferred readers
    (the refusal being probed is theirs). Nothing is sent."""
    from newsletter.core.safety.signing import bounce_address, system_bounce_token
    from newsletter.delivery.relay_config import route
    from newsletter.delivery.relay_probe import probe_rcpt
    from newsletter.delivery.relays import down_relays
    from newsletter.delivery.warmup import from_domain_of
    from newsletter.models import Subscriber

    cfg = get_settings()
    with session_scope() as s:
        domain, publication = from_domain_of(s, send_id)
        rcpt = cfg.probe_rcpt or s.scalar(
            select(Subscriber.email)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.send_id == send_id, Delivery.state == "deferred")
            .order_by(Delivery.next_attempt_at, Delivery.id)
            .limit(1)
        )
    if not rcpt:
        return True, "no deferred reader left to probe with"
    down = down_relays(fresh=True)
    relays = [r for r in route(load_relays(), domain, publication) if r.name not in down]
    sender = bounce_address(system_bounce_token())
    details = []
    for relay in relays:
        ok, detail = probe_rcpt(relay, sender, rcpt)
        if ok:
            return True, f"{relay.name}: {detail}"
        details.append(f"{relay.name}: {detail}")
    return False, "; ".join(details)[:300] or "no relay in service"


def mark_relay_pause(s: Session, send_id: int, kind: str = "relay") -> None:
    """Record (in ``s``) that ``send_id`` paused itself and heals when the relay answers
    (``relay``: it can be reached again) or accepts a test RCPT (``4xx``).

    A 4xx pause keeps the probe count of the send's previous 4xx pause (a resume by a
    probe keeps it too), so a relay that accepts the test RCPT but keeps deferring
    messages (a 4xx at DATA) makes the send resume and pause again with doubling gaps,
    at most 5 minutes apart, not every few seconds."""
    cfg = get_settings()
    now = utcnow()
    attempts = 0
    if kind == "4xx":
        attempts = int(s.scalar(select(Send.probe_attempts).where(Send.id == send_id)) or 0)
    s.execute(
        update(Send)
        .where(Send.id == send_id, Send.state == "paused")
        .values(
            auto_paused_at=now,
            auto_pause_kind=kind,
            probe_attempts=attempts,
            next_probe_at=now
            + dt.timedelta(seconds=_gap(attempts) if attempts else cfg.relay_probe_seconds),
        )
    )


def _gap(attempts: int) -> float:
    return min(get_settings().relay_probe_seconds * 2**attempts, MAX_GAP)


def heal(send_id: int, now: dt.datetime | None = None) -> str:
    """Probe the relay for an auto-paused send if it is time.

    Returns ``resumed``, ``waiting`` (not yet time, or the relay is still down),
    ``gave_up`` (past the limit: stays paused) or ``n/a`` (not auto-paused).
    """
    cfg = get_settings()
    now = now or utcnow()
    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None or send.state != "paused" or send.auto_paused_at is None:
            return "n/a"
        if send.next_probe_at is not None and send.next_probe_at > now:
            return "waiting"
        attempts, since = send.probe_attempts, send.auto_paused_at
        kind = send.auto_pause_kind or "relay"
        # claim this probe: only one caller acts on it
        won = s.execute(
            update(Send)
            .where(Send.id == send_id, Send.probe_attempts == attempts, Send.state == "paused")
            .values(
                probe_attempts=attempts + 1,
                next_probe_at=now + dt.timedelta(seconds=_gap(attempts + 1)),
            )
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]
            return "waiting"
    ok, detail = probe_for_send(send_id, now)
    if ok and kind == "4xx":
        ok, detail = probe_rcpt_for_send(send_id)
    with session_scope() as s:
        if ok:
            if not transition(s, send_id, "resume"):
                return "n/a"
            s.execute(
                update(Send)
                .where(Send.id == send_id)
                .values(
                    auto_paused_at=None,
                    auto_pause_kind=None,
                    next_probe_at=None,
                    # a 4xx pause again soon waits longer (see mark_relay_pause)
                    probe_attempts=attempts + 1 if kind == "4xx" else 0,
                    error=None,
                )
            )
            due = update(Delivery).where(  # the pause's deferrals are due now, not later
                Delivery.send_id == send_id, Delivery.state == "deferred"
            )
            if kind != "4xx":  # an outage: those it deferred
                due = due.where(Delivery.last_reply.like("connection%"))
            s.execute(due.values(next_attempt_at=now))
            down = (now - since).total_seconds()
            what = (
                "accepts a test recipient again / 发信服务器重新接受测试收件人"
                if kind == "4xx"
                else "answers again / 发信服务器已恢复"
            )
            notify(
                s,
                "auto_resumed",
                f"send {send_id} resumed by itself",
                f"发送自动继续 / The relay {what} ({detail}) after about {down:.0f} s; "
                "the send goes on.",
                key=f"resumed:{send_id}:{since.isoformat()}",  # one per pause
                once=True,
            )
            log.info("send %s: relay answers again, resumed", send_id)
            return "resumed"
        if (now - since).total_seconds() >= cfg.auto_resume_limit_seconds:
            reason = (
                "auto-paused: the relay has not "
                + ("accepted a test recipient" if kind == "4xx" else "answered")
                + f" for {cfg.auto_resume_limit_seconds} s ({detail}); check it, then resume "
                "by hand / 发信服务器长时间无响应，需人工恢复"
            )
            s.execute(
                update(Send)
                .where(Send.id == send_id)
                .values(auto_paused_at=None, auto_pause_kind=None, next_probe_at=None, error=reason)
            )
            notify(s, "auto_resume_gave_up", f"send {send_id} stays paused", reason,
                   key=f"send:{send_id}", needs_person=True)  # fmt: skip
            return "gave_up"
    log.info("send %s: relay still down (%s)", send_id, detail)
    return "waiting"


def due_for_probe(now: dt.datetime) -> list[int]:
    """Sends auto-paused for the relay whose next probe is due."""
    with session_scope() as s:
        return list(
            s.scalars(
                select(Send.id).where(
                    Send.state == "paused",
                    Send.auto_paused_at.is_not(None),
                    Send.next_probe_at <= now,
                )
            )
        )
