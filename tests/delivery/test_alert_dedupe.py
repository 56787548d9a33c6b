"""Alerts are never silently deduplicated across different events (issue 30): only an
identical alert (same kind, same send, same reason) within ``alert_dedupe_seconds`` is
dropped; an event that happens once is alerted once; a pause that needs a person is
always alerted and says so."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.core.config import get_settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.alerts import NEEDS_PERSON, notify
from newsletter.delivery.outcomes import BatchResult, maybe_auto_pause
from newsletter.delivery.run import start
from newsletter.delivery.sends import transition
from newsletter.models import AuditLog, Send
from tests.factories import seed


def _alerts(event: str) -> list[AuditLog]:
    with session_scope() as s:
        return list(
            s.scalars(
                select(AuditLog).where(AuditLog.action == f"notify.{event}").order_by(AuditLog.id)
            )
        )


def test_only_identical_alerts_within_the_window_are_dropped(sqlite_settings, moved_clock) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        assert notify(s, "failed", "send 7 could not start", "no list / 无名单", key="send:7")
        # the same again at once: dropped
        assert not notify(s, "failed", "send 7 could not start", "no list / 无名单", key="send:7")
        # another reason, another send: both sent
        assert notify(s, "failed", "send 7 could not start", "segment gone", key="send:7")
        assert notify(s, "failed", "send 8 could not start", "no list / 无名单", key="send:8")
    moved_clock.advance(get_settings().alert_dedupe_seconds + 1)
    with session_scope() as s:  # the window is over: the same alert is sent again
        assert notify(s, "failed", "send 7 could not start", "no list / 无名单", key="send:7")
    assert len(_alerts("failed")) == 4

    reset_settings(sqlite_settings.model_copy(update={"alert_dedupe_seconds": 0}))
    with session_scope() as s:  # 0: nothing is deduplicated
        assert notify(s, "failed", "send 7 could not start", "no list / 无名单", key="send:7")
        assert notify(s, "failed", "send 7 could not start", "no list / 无名单", key="send:7")
    assert len(_alerts("failed")) == 6


def test_an_event_that_happens_once_is_alerted_once(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        assert notify(s, "finished", "send 7 finished", "sent: 3", key="finished:7", once=True)
        assert not notify(s, "finished", "send 7 finished", "sent: 4", key="finished:7", once=True)
        assert notify(s, "finished", "send 8 finished", "sent: 3", key="finished:8", once=True)
    assert [a.target for a in _alerts("finished")] == ["finished:7", "finished:8"]


def test_two_pauses_that_need_a_person_within_a_minute_give_two_alerts(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    """Mostly 5xx answers: the pause will not heal by itself. Paused, resumed by a person,
    paused again for the very same reason within a minute: two alerts, each saying a
    person must act (the dedupe window would otherwise have dropped the second)."""
    ids = seed(3)
    start(ids["send"])
    for _ in range(2):
        maybe_auto_pause(ids["send"], BatchResult(sent=0, bounced=25))
        with session_scope() as s:
            send = s.get(Send, ids["send"])
            assert send is not None and send.state == "paused"
            assert send.auto_paused_at is None  # not a pause that probes and heals
            transition(s, ids["send"], "resume")
    alerts = _alerts("auto_paused")
    assert len(alerts) == 2
    for a in alerts:
        assert a.detail["subject"].startswith(NEEDS_PERSON)
        assert "不会自动恢复" in a.detail["body"]
    assert alerts[0].detail["body"] == alerts[1].detail["body"]  # the same reason twice


def test_two_pauses_that_heal_within_a_minute_give_two_alerts(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    ids = seed(3)
    start(ids["send"])
    for _ in range(2):
        maybe_auto_pause(ids["send"], BatchResult(no_relay=3))
        with session_scope() as s:
            send = s.get(Send, ids["send"])
            assert send is not None and send.state == "paused" and send.auto_paused_at
            transition(s, ids["send"], "resume")
    alerts = _alerts("auto_paused")
    assert len(alerts) == 2 and alerts[0].target != alerts[1].target
    assert not any(a.detail["subject"].startswith(NEEDS_PERSON) for a in alerts)
