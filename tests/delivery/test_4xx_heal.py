"""A 4xx pause heals (issue 30): a relay that refuses recipients for now (451) pauses the
send; the relay is probed with a test RCPT like an outage is probed by connecting, and
the send resumes by itself once a test recipient is accepted, with an alert both ways.
Before, such a pause waited for a person even after the relay had recovered."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.alerts import NEEDS_PERSON
from newsletter.delivery.run import drive_inline
from newsletter.devtools.sink import SinkHandler, start_sink
from newsletter.models import AuditLog, Send
from tests.e2e.procs import send_state
from tests.factories import seed
from tests.waiting import wait_for

N = 60


class Busy(SinkHandler):
    """Answers every RCPT with 451 while ``busy`` is set, and counts the RCPTs it saw."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory)
        self.busy = threading.Event()
        self.busy.set()
        self.refused = 0
        self.accepted_while_paused: list[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:  # fmt: skip
        if self.busy.is_set():
            self.refused += 1
            return "451 4.7.1 try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def _settings(base: Any, port: int, **kw: Any) -> None:
    reset_settings(base.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": port, "batch_size": 20,
        "auto_pause_min_attempts": 5, "relay_probe_seconds": 0.3,
        "auto_resume_limit_seconds": 60, **kw,
    }))  # fmt: skip


def _alerts() -> list[AuditLog]:
    with session_scope() as s:
        return list(
            s.scalars(
                select(AuditLog).where(AuditLog.action.like("notify.auto_%")).order_by(AuditLog.id)
            )
        )


def test_a_4xx_pause_probes_with_a_test_rcpt_and_resumes_when_the_relay_recovers(
    any_db, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    handler = Busy(tmp_path / "sink")
    ctrl, _ = start_sink(handler)
    try:
        _settings(any_db, ctrl.port)
        ids = seed(N)
        probed: dict[str, int] = {}

        def recover() -> None:
            wait_for(lambda: send_state(ids["send"]) == "paused", timeout=60,
                     what="the send to pause")  # fmt: skip
            # paused for 4xx: the probes' test RCPTs are refused as long as the relay is busy
            wait_for(lambda: handler.refused > probed.setdefault("at_pause", handler.refused),
                     timeout=30, what="a test RCPT while paused")  # fmt: skip
            handler.busy.clear()  # the relay recovers

        t = threading.Thread(target=recover, daemon=True)
        t.start()
        state = drive_inline(ids["send"], max_wait=60)
        t.join(5)
        assert state == "finished"
        got = Counter(r for _f, rs, _d in handler.messages for r in rs)
        assert got == Counter({f"reader{i}@example.com": 1 for i in range(N)})
        alerts = _alerts()
        events = [a.action.removeprefix("notify.") for a in alerts]
        assert events == ["auto_paused", "auto_resumed"], events
        assert "4xx" in alerts[0].detail["body"]
        assert not alerts[0].detail["subject"].startswith(NEEDS_PERSON)
        assert "test recipient" in alerts[1].detail["body"]
        assert "RCPT 250" in alerts[1].detail["body"]
        with session_scope() as s:
            send = s.get(Send, ids["send"])
            assert send is not None and send.auto_pause_kind is None and send.error is None
    finally:
        ctrl.stop()


def test_without_auto_resume_4xx_the_pause_waits_for_a_person(
    sqlite_settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    handler = Busy(tmp_path / "sink")
    ctrl, _ = start_sink(handler)
    try:
        _settings(sqlite_settings, ctrl.port, auto_resume_4xx=False)
        ids = seed(30)
        assert drive_inline(ids["send"], max_wait=5) == "paused"
        with session_scope() as s:
            send = s.get(Send, ids["send"])
            assert send is not None and send.auto_paused_at is None
        alerts = _alerts()
        assert [a.action for a in alerts] == ["notify.auto_paused"]
        assert alerts[0].detail["subject"].startswith(NEEDS_PERSON)
    finally:
        ctrl.stop()


def test_a_relay_that_keeps_deferring_after_the_test_rcpt_is_probed_less_and_less_often(
    sqlite_settings, tmp_path: Path, moved_clock
) -> None:  # type: ignore[no-untyped-def]
    """The test RCPT is accepted but messages keep being deferred (a 4xx at DATA): each
    4xx pause waits twice as long as the one before for its first probe."""
    from newsletter.delivery.heal import heal
    from newsletter.delivery.outcomes import BatchResult, maybe_auto_pause
    from newsletter.delivery.run import start

    handler = Busy(tmp_path / "sink")
    handler.busy.clear()  # RCPT accepted
    ctrl, _ = start_sink(handler)
    try:
        _settings(sqlite_settings, ctrl.port)
        ids = seed(3)
        start(ids["send"])
        gaps = []
        for _ in range(3):
            maybe_auto_pause(ids["send"], BatchResult(deferred=25))
            with session_scope() as s:
                send = s.get(Send, ids["send"])
                assert send is not None and send.auto_pause_kind == "4xx"
                assert send.next_probe_at is not None and send.auto_paused_at is not None
                gaps.append((send.next_probe_at - send.auto_paused_at).total_seconds())
                due = send.next_probe_at
            moved_clock.at = due
            assert heal(ids["send"]) == "resumed"
        assert gaps[0] < gaps[1] < gaps[2], gaps
    finally:
        ctrl.stop()
