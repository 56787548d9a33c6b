"""Review notices: who is told when an issue waits for review, is approved or is sent back;
each notice mailed once (a real SMTP server), even with two runners at once."""

from __future__ import annotations

import email
import email.policy
import threading
from pathlib import Path

from sqlalchemy import select

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.notices import address_of, mail_due
from newsletter.issues.review import approve, request_changes, submit_for_review
from newsletter.issues.store import create_issue
from newsletter.models import Issue, ReviewNotice, User

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _people() -> None:
    with session_scope() as s:
        for name, role, mail, active in [
            ("author", "editor", "author@example.org", True),
            ("second", "editor", None, True),  # no address: the console only
            ("boss@example.org", "admin", None, True),  # the username is an address
            ("ops1", "ops", "ops1@example.org", True),
            ("gone", "editor", "gone@example.org", False),  # inactive: not told
            ("reader", "marketing", "m@example.org", True),  # cannot approve: not told
        ]:
            s.add(User(username=name, role=role, email=mail, active=active, password_hash="x"))


def _issue() -> int:
    with session_scope() as s:
        issue, _ = create_issue(s, EXAMPLES / "issue-sample.md", actor="author")
        return issue.id


def _notices() -> list[tuple[str, str]]:
    with session_scope() as s:
        return [
            (n.recipient, n.kind) for n in s.scalars(select(ReviewNotice).order_by(ReviewNotice.id))
        ]


def test_each_step_tells_the_right_people(pg_settings) -> None:  # type: ignore[no-untyped-def]
    _people()
    iid = _issue()
    with session_scope() as s:
        issue = s.get(Issue, iid)
        assert issue is not None
        submit_for_review(s, issue, "author")
        submit_for_review(s, issue, "author")  # twice: told once
    ready = sorted(r for r, k in _notices() if k == "ready")
    assert ready == ["boss@example.org", "ops1", "second"]  # not the author, nor gone/reader
    with session_scope() as s:
        issue = s.get(Issue, iid)
        assert issue is not None
        request_changes(s, issue, "second", "第二节的日期有误")
    assert _notices()[-1] == ("author", "sent_back")
    with session_scope() as s:
        issue = s.get(Issue, iid)
        assert issue is not None
        note = s.scalars(select(ReviewNotice.note).order_by(ReviewNotice.id.desc())).first()
        assert note == "第二节的日期有误"
        approve(s, issue, "second")
    assert _notices()[-1] == ("author", "approved")


def test_notices_are_mailed_once_with_two_runners(pg_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    reset_settings(pg_settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    _people()
    iid = _issue()
    with session_scope() as s:
        issue = s.get(Issue, iid)
        assert issue is not None
        submit_for_review(s, issue, "author")
    start = threading.Barrier(2)
    counts: list[int] = []

    def runner() -> None:
        start.wait(timeout=30)
        counts.append(mail_due())

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(counts) == 2  # boss@ and ops1; "second" has no address
    rcpts = sorted(r for _f, rs, _d in sink.messages for r in rs)
    assert rcpts == ["boss@example.org", "ops1@example.org"]
    msg = email.message_from_bytes(sink.messages[0][2], policy=email.policy.default)
    assert str(msg["Subject"]).startswith("第47期等待你审核")
    body = msg.get_body(("plain",))
    assert (
        body is not None and f"https://news.example.org/console/issues/{iid}" in body.get_content()
    )
    with session_scope() as s:
        states = dict(s.execute(select(ReviewNotice.recipient, ReviewNotice.mail_state)).all())
    assert states == {"boss@example.org": "sent", "ops1": "sent", "second": "no_address"}
    assert mail_due() == 0 and len(sink.messages) == 2  # nothing twice


def test_a_relay_that_refuses_marks_the_notice_failed_and_goes_on(pg_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    sink.rcpt_replies["ops1@example.org"] = "550 5.1.1 no such user"
    reset_settings(pg_settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    _people()
    iid = _issue()
    with session_scope() as s:
        issue = s.get(Issue, iid)
        assert issue is not None
        submit_for_review(s, issue, "author")
    assert mail_due() == 1
    with session_scope() as s:
        states = dict(s.execute(select(ReviewNotice.recipient, ReviewNotice.mail_state)).all())
    assert states["ops1"] == "failed" and states["boss@example.org"] == "sent"


def test_address_of_refuses_header_tricks() -> None:
    def u(name: str, mail: str | None = None) -> User:
        return User(username=name, email=mail, role="editor", password_hash="x")

    assert address_of(u("a@example.org")) == "a@example.org"
    assert address_of(u("plain")) is None
    assert address_of(u("x", "b@example.org\r\nBcc: c@example.org")) is None
    assert address_of(u("x@example.org", "<b@example.org>")) == "x@example.org"


def test_a_second_send_back_updates_the_unread_notice(pg_settings) -> None:  # type: ignore[no-untyped-def]
    _people()
    iid = _issue()
    for note in ("第一处日期有误", "第二节也请补充来源"):
        with session_scope() as s:
            issue = s.get(Issue, iid)
            assert issue is not None
            submit_for_review(s, issue, "author")
            request_changes(s, issue, "second", note)
    with session_scope() as s:
        back = s.scalars(select(ReviewNotice).where(ReviewNotice.kind == "sent_back")).all()
        assert len(back) == 1  # not told twice while unread …
        assert back[0].note == "第二节也请补充来源"  # … but told the latest note
