"""A relay that accepts the connection and never answers (issue 30).

The reliability test found a send that sat ``sending`` for minutes with nothing sent, no
deferral, no relay taken out and no alert: the relay took the TCP connection and then
said nothing, and every message waited out a 30 s socket timeout while the heartbeat kept
the lease. Here a real socket server (``tests/hangrelay.py``) hangs from the start and
mid-send (no reply to MAIL, or none to the final dot), alone and beside a healthy relay
(aiosmtpd). Every deadline is 1 s: the send must finish through the healthy relay, or
end paused with an alert, within a bounded wait; the hung relay is taken out at its first
timeout and never tried again; a message whose body had gone out is counted at risk, and
no other is.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.batch import process_batch
from newsletter.delivery.relays import down_relays
from newsletter.delivery.run import drive_inline, start
from newsletter.devtools.sink import SinkHandler
from newsletter.models import AuditLog, Delivery, Send
from tests.factories import seed
from tests.hangrelay import HungRelay

N = 150
DEADLINE = 1.0


@pytest.fixture
def hung() -> Iterator[list[HungRelay]]:
    made: list[HungRelay] = []
    yield made
    for h in made:
        h.close()


def _use(base: Settings, *relays: tuple[str, int]) -> None:
    reset_settings(base.model_copy(update={
        "relays": json.dumps([{"name": n, "host": "127.0.0.1", "port": p} for n, p in relays]),
        "smtp_connect_timeout": DEADLINE, "smtp_timeout": DEADLINE, "smtp_data_timeout": DEADLINE,
        "batch_size": 50,
        "relay_probe_seconds": 120,  # no probe within the test: each connection is the send's
        "auto_pause_min_attempts": 1000,  # only "no relay in service" may pause here
    }))  # fmt: skip


def _alerts() -> dict[str, list[str]]:
    with session_scope() as s:
        out: dict[str, list[str]] = {}
        for a in s.scalars(select(AuditLog).where(AuditLog.action.like("notify.%"))):
            out.setdefault(a.action.removeprefix("notify."), []).append(json.dumps(
                a.detail, ensure_ascii=False))  # fmt: skip
        return out


def _ledger(send_id: int) -> tuple[dict[str, int], int, int]:
    """(deliveries by state, at risk, still claimed)."""
    with session_scope() as s:
        states = dict(s.execute(select(Delivery.state, func.count()).where(
            Delivery.send_id == send_id).group_by(Delivery.state)).all())  # fmt: skip
        at_risk = s.scalar(select(func.count()).where(Delivery.at_risk)) or 0
        claimed = s.scalar(select(func.count()).where(Delivery.claimed_by.is_not(None))) or 0
    return {str(k): int(v) for k, v in states.items()}, int(at_risk), int(claimed)


def _received(sink: SinkHandler) -> Counter[str]:
    return Counter(r for _f, rs, _d in sink.messages for r in rs)


READERS = {f"reader{i}@example.com" for i in range(N)}


def _details(alerts: dict[str, list[str]], kind: str) -> str:
    assert kind in alerts, f"no {kind} alert: {sorted(alerts)}"
    return " ".join(alerts[kind])


def test_a_relay_that_never_greets_is_taken_out_at_once_and_the_healthy_one_carries_the_send(
    pg_settings: Settings, smtp_sink: tuple[int, SinkHandler], hung: list[HungRelay]
) -> None:
    port, sink = smtp_sink
    h = HungRelay()
    hung.append(h)
    _use(pg_settings, ("hung", h.port), ("good", port))
    ids = seed(N)
    t0 = time.monotonic()
    assert drive_inline(ids["send"], max_wait=30) == "finished"
    took = time.monotonic() - t0
    assert _received(sink) == dict.fromkeys(READERS, 1)  # everyone once, by the healthy relay
    assert h.connections == 1, "the hung relay was tried again after its first timeout"
    assert "hung" in down_relays(fresh=True)
    states, at_risk, claimed = _ledger(ids["send"])
    assert states == {"sent": N} and at_risk == 0 and claimed == 0
    details = _details(_alerts(), "relay_down")
    assert "无响应" in details and "greeting" in details
    # One deadline for the whole send, not one per message (150 messages × 1 s).
    assert took < DEADLINE + 6, took


def test_the_only_relay_hanging_from_the_start_pauses_the_send_with_an_alert(
    pg_settings: Settings, hung: list[HungRelay]
) -> None:
    h = HungRelay()
    hung.append(h)
    _use(pg_settings, ("only", h.port))
    ids = seed(60)
    start(ids["send"])
    t0 = time.monotonic()
    res = process_batch(ids["send"])
    took = time.monotonic() - t0
    assert res.stopped == "paused" and res.sent == 0
    assert took < DEADLINE + 3, took  # one deadline, then the group is handed back
    assert h.connections == 1
    states, at_risk, claimed = _ledger(ids["send"])
    # The message that met the silence is deferred; its group and the rest of the batch
    # were given back untouched (not at risk: no body went out), nothing is left `sending`.
    assert states.get("sending", 0) == 0 and states.get("deferred") == 1
    assert states.get("queued") == 59 and at_risk == 0 and claimed == 0
    with session_scope() as s:
        send = s.get(Send, ids["send"])
        assert send is not None and send.state == "paused"
        assert send.auto_paused_at is not None  # probed and resumed when a relay answers
    alerts = _alerts()
    assert "无响应" in _details(alerts, "relay_down")
    assert "auto_paused" in alerts


@pytest.mark.parametrize("at", ["mail", "dot"])
def test_a_relay_that_goes_silent_mid_send_hands_its_group_to_the_healthy_one(
    pg_settings: Settings, smtp_sink: tuple[int, SinkHandler], hung: list[HungRelay], at: str
) -> None:
    port, sink = smtp_sink
    h = HungRelay(after=20, at=at)
    hung.append(h)
    _use(pg_settings, ("hung", h.port), ("good", port))
    ids = seed(N)
    t0 = time.monotonic()
    assert drive_inline(ids["send"], max_wait=30) == "finished"
    took = time.monotonic() - t0
    assert h.hung.is_set() and len(h.messages) == 20
    answered = _received(sink) + Counter(r for rs, _b in h.messages for r in rs)
    assert set(answered) == READERS  # nobody lost
    assert max(answered.values()) == 1  # no reader twice among the answered transactions
    states, at_risk, claimed = _ledger(ids["send"])
    assert states == {"sent": N} and claimed == 0
    # At risk only when the final dot was written: the relay may still deliver that one.
    assert at_risk == len(h.unanswered) == (1 if at == "dot" else 0)
    assert h.late_mail == 0 and h.silent_connections == 0  # never waited on again
    assert "无响应" in _details(_alerts(), "relay_down")
    assert took < DEADLINE + 6, took


def test_the_only_relay_going_silent_mid_send_pauses_the_send_and_loses_nobody(
    pg_settings: Settings, hung: list[HungRelay]
) -> None:
    h = HungRelay(after=30, at="dot")
    hung.append(h)
    _use(pg_settings, ("only", h.port))
    ids = seed(60)
    start(ids["send"])
    t0 = time.monotonic()
    results: list[Any] = []
    while not results or results[-1].stopped is None:
        results.append(process_batch(ids["send"]))
        assert time.monotonic() - t0 < 30, "the send neither finished nor paused"
    took = time.monotonic() - t0
    assert results[-1].stopped == "paused"
    assert took < DEADLINE + 3, took
    states, at_risk, claimed = _ledger(ids["send"])
    assert states.get("sent") == 30 and states.get("sending", 0) == 0
    assert states.get("deferred") == 1 and at_risk == 1  # the body went out: counted
    assert states.get("queued") == 29 and claimed == 0
    alerts = _alerts()
    assert "dot" in _details(alerts, "relay_down") and "auto_paused" in alerts
