"""The delivery engine against a real SMTP server (aiosmtpd), on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
from email.header import decode_header, make_header

from sqlalchemy import func, select, update

from newsletter.audience.service import unsubscribe
from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.run import drive_inline, start
from newsletter.delivery.sends import state_counts, transition
from newsletter.models import Delivery, Send, Subscriber, Suppression
from tests.factories import seed


def _use_sink(settings, port):  # type: ignore[no-untyped-def]
    s = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    reset_settings(s)
    return s


def test_every_subscriber_gets_exactly_one_message(any_db, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _use_sink(any_db, port)
    ids = seed(25)
    assert drive_inline(ids["send"]) == "finished"
    rcpts = sorted(r for _f, rs, _d in sink.messages for r in rs)
    assert rcpts == sorted(f"reader{i}@example.com" for i in range(25))
    with session_scope() as s:
        counts = state_counts(s, ids["send"])
    assert counts["sent"] == 25 and sum(counts.values()) == 25


def test_message_headers_and_chinese_round_trip(sqlite_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _use_sink(sqlite_settings, port)
    ids = seed(1)
    drive_inline(ids["send"])
    mail_from, _rcpts, data = sink.messages[0]
    assert mail_from.startswith("bounces+d") and mail_from.endswith("@example.org")  # VERP
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert str(msg["Subject"]) == "營商環境政策周報 第47期" or "第47期" in str(msg["Subject"])
    assert str(
        make_header(decode_header(data.split(b"\r\nFrom: ")[1].split(b"\r\n")[0].decode()))
    ).startswith("政策周报")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    lu = str(msg["List-Unsubscribe"])
    assert lu.startswith("<https://news.example.org/u/u") and "mailto:unsubscribe+u" in lu
    assert msg["List-Id"] is not None and "<weekly.example.org>" in str(msg["List-Id"])
    assert msg["Message-ID"] and msg["Date"] and msg["Feedback-ID"]
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert html is not None and text is not None
    assert html["Content-Transfer-Encoding"] == "8bit"
    assert "读者0，您好" in html.get_content() and "读者0，您好" in text.get_content()
    assert "%%" not in data.decode()
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_replanning_is_a_noop(any_db) -> None:  # type: ignore[no-untyped-def]
    from newsletter.delivery.sends import plan

    ids = seed(10)
    start(ids["send"])
    with session_scope() as s:
        assert plan(s, ids["send"]) == (10, 0)
        assert s.scalar(select(func.count()).select_from(Delivery)) == 10


def test_hard_bounce_suppresses_and_soft_bounce_defers(any_db, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _use_sink(any_db, port)
    sink.rcpt_replies["reader1@example.com"] = "550 5.1.1 mailbox unavailable"
    sink.rcpt_replies["reader2@example.com"] = "451 4.7.1 greylisted, try later"
    ids = seed(4)
    state = drive_inline(ids["send"], max_wait=0)
    assert state == "sending"  # one delivery is deferred into the future
    with session_scope() as s:
        rows = dict(s.execute(select(Subscriber.email, Delivery.state).join(Delivery)).all())
        assert rows["reader1@example.com"] == "bounced"
        assert rows["reader2@example.com"] == "deferred"
        assert rows["reader0@example.com"] == "sent"
        sup = s.scalar(select(Suppression).where(Suppression.email == "reader1@example.com"))
        assert sup is not None and sup.reason == "hard_bounce"
    # The greylist clears: the retry delivers and the send finishes.
    del sink.rcpt_replies["reader2@example.com"]
    with session_scope() as s:
        s.execute(update(Delivery).values(next_attempt_at=None).where(Delivery.state == "deferred"))
    assert drive_inline(ids["send"]) == "finished"
    with session_scope() as s:
        c = state_counts(s, ids["send"])
    assert c == {
        "queued": 0,
        "sending": 0,
        "sent": 3,
        "deferred": 0,
        "bounced": 1,
        "failed": 0,
        "skipped": 0,
    }


def test_unsubscribe_during_a_running_send_is_honoured(any_db, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _use_sink(any_db, port)
    ids = seed(6)
    start(ids["send"])  # planned: all six have deliveries
    with session_scope() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "reader3@example.com"))
        unsubscribe(s, sid, ids["list"])
    assert drive_inline(ids["send"]) == "finished"
    rcpts = {r for _f, rs, _d in sink.messages for r in rs}
    assert "reader3@example.com" not in rcpts and len(rcpts) == 5
    with session_scope() as s:
        assert state_counts(s, ids["send"])["skipped"] == 1


def test_pause_stops_and_resume_finishes(sqlite_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _use_sink(sqlite_settings, port)
    ids = seed(5)
    start(ids["send"])
    with session_scope() as s:
        transition(s, ids["send"], "pause")
    from newsletter.delivery.run import step

    assert step(ids["send"]).action == "stopped"
    assert sink.messages == []
    with session_scope() as s:
        transition(s, ids["send"], "resume")
        assert transition(s, ids["send"], "resume") is False  # idempotent
    assert drive_inline(ids["send"]) == "finished"
    assert len(sink.messages) == 5


def test_smtp_server_that_hangs_up_after_data_is_retried(sqlite_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _use_sink(sqlite_settings, port)
    calls = {"n": 0}

    def flaky(envelope):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            return "421 4.3.2 closing connection"
        return None

    sink.on_data = flaky
    ids = seed(4)
    drive_inline(ids["send"], max_wait=0)
    with session_scope() as s:
        s.execute(update(Delivery).values(next_attempt_at=None).where(Delivery.state == "deferred"))
    assert drive_inline(ids["send"]) == "finished"
    with session_scope() as s:
        assert state_counts(s, ids["send"])["sent"] == 4
        send = s.get(Send, ids["send"])
        assert send is not None and send.state == "finished"
    assert len({r for _f, rs, _d in sink.messages for r in rs}) == 4


def test_soft_bounces_in_consecutive_sends_suppress_the_address(sqlite_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    from newsletter.core.config import get_settings

    port, sink = smtp_sink
    reset_settings(
        sqlite_settings.model_copy(
            update={
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "max_attempts": 1,
                "soft_bounce_sends": 2,
            }
        )
    )
    sink.rcpt_replies["reader1@example.com"] = "452 4.2.2 mailbox full"
    ids = seed(2)
    assert drive_inline(ids["send"]) == "finished"
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Suppression)) == 0  # one send: not yet
        second = Send(
            publication_id=ids["publication"],
            issue_id=ids["issue"],
            list_id=ids["list"],
            state="draft",
        )
        s.add(second)
        s.flush()
        second_id = second.id
    assert drive_inline(second_id) == "finished"
    with session_scope() as s:
        sup = s.scalar(select(Suppression).where(Suppression.email == "reader1@example.com"))
        assert sup is not None and "consecutive" in sup.note
        assert get_settings().soft_bounce_sends == 2
