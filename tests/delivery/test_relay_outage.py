"""A relay outage heals itself: the send pauses, probes the relay, resumes when it
answers and finishes with nothing lost; the alerts arrive by webhook (and in the
audit log for the console), not through the relay that is down."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.heal import heal
from newsletter.delivery.run import drive_inline, start
from newsletter.devtools.sink import SinkHandler, start_sink
from newsletter.models import AuditLog, Send, utcnow
from newsletter.schedule.tick import tick
from tests.factories import seed
from tests.waiting import wait_for


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        type(self).received.append(json.loads(self.rfile.read(n)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    class Hook(_Hook):
        received: list[dict[str, object]] = []

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", Hook.received
    server.shutdown()


def _settings(base, port: int, hook: str):  # type: ignore[no-untyped-def]
    s = base.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_timeout": 2.0,
            "batch_size": 20,
            "auto_pause_min_attempts": 5,
            "relay_probe_seconds": 0.3,
            "auto_resume_limit_seconds": 60,
            "alert_webhook_url": hook,
            "ops_emails": ["ops@example.org"],  # mailed through the relay: it is down
        }
    )
    reset_settings(s)
    return s


def test_relay_down_then_back_the_send_resumes_and_finishes(
    any_db, tmp_path: Path, webhook
) -> None:  # type: ignore[no-untyped-def]
    hook, received = webhook
    handler = SinkHandler(directory=tmp_path / "sink")
    ctrl, _ = start_sink(handler)
    port = ctrl.port
    _settings(any_db, port, hook)
    ids = seed(120)
    outage = {"down": 0.0}

    def cut(envelope: object) -> None:
        if len(handler.messages) == 30 and not outage["down"]:
            outage["down"] = time.monotonic()
            threading.Thread(target=ctrl.stop, daemon=True).start()

    handler.on_data = cut
    restarted: list[object] = []

    def bring_back() -> None:
        wait_for(lambda: outage["down"], timeout=60, what="the relay to go down")
        time.sleep(3.0)  # the relay is down for 3 s
        new, _ = start_sink(handler, port=port)
        restarted.append(new)

    threading.Thread(target=bring_back, daemon=True).start()
    state = drive_inline(ids["send"], max_wait=60)
    for c in restarted:
        c.stop()  # type: ignore[attr-defined]
    assert state == "finished"
    counts = Counter(r for _f, rs, _d in handler.messages for r in rs if r.startswith("reader"))
    assert len(counts) == 120  # nothing lost
    with session_scope() as s:
        actions = [a.action for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert sum(n - 1 for n in counts.values()) <= 1  # at most the message under way
    assert "notify.auto_paused" in actions and "notify.auto_resumed" in actions
    events = [r["event"] for r in received]
    assert "auto_paused" in events and "auto_resumed" in events
    paused = next(r for r in received if r["event"] == "auto_paused")
    assert "relay" in str(paused["body"]) and paused["msgtype"] == "text"


def test_relay_that_stays_down_gives_up_after_the_limit(sqlite_settings, webhook) -> None:  # type: ignore[no-untyped-def]
    hook, received = webhook
    from newsletter.devtools.sink import free_port

    s = _settings(sqlite_settings, free_port(), hook)  # nothing listens there
    reset_settings(s.model_copy(update={"auto_resume_limit_seconds": 1}))
    ids = seed(30)
    state = drive_inline(ids["send"], max_wait=5)
    assert state == "paused"
    with session_scope() as ses:
        send = ses.get(Send, ids["send"])
        assert send.auto_paused_at is None and "resume by hand" in (send.error or "")
    events = [r["event"] for r in received]
    assert events.count("auto_paused") == 1 and events.count("auto_resume_gave_up") == 1


def test_the_tick_probes_and_resumes_in_celery_mode(sqlite_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctrl, _ = start_sink(SinkHandler(directory=tmp_path / "sink"))
    try:
        _settings(sqlite_settings, ctrl.port, "")
        ids = seed(3)
        past = utcnow() - dt.timedelta(seconds=5)
        with session_scope() as s:
            s.execute(
                update(Send)
                .where(Send.id == ids["send"])
                .values(state="paused", auto_paused_at=past, next_probe_at=past)
            )
        assert tick() == [ids["send"]]  # the caller (beat) restarts its batches
        assert heal(ids["send"]) == "n/a"  # a second prober finds nothing to do
        with session_scope() as s:
            send = s.get(Send, ids["send"])
            assert send.state == "sending" and send.auto_paused_at is None
    finally:
        ctrl.stop()


def test_a_second_auto_pause_within_a_minute_is_alerted_too(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    """Issue 30: the alert key was per minute, so a send paused, resumed and paused again
    within the same minute raised one alert while it sat paused."""
    from newsletter.delivery.outcomes import BatchResult, maybe_auto_pause
    from newsletter.delivery.sends import transition

    ids = seed(3)
    start(ids["send"])
    for _ in range(2):
        maybe_auto_pause(ids["send"], BatchResult(no_relay=3))
        with session_scope() as s:
            assert s.get(Send, ids["send"]).state == "paused"  # type: ignore[union-attr]
            transition(s, ids["send"], "resume")
    with session_scope() as s:
        alerts = s.scalars(
            select(AuditLog.target).where(AuditLog.action == "notify.auto_paused")
        ).all()
    assert len(alerts) == 2 and len(set(alerts)) == 2
