"""The welcome series (issue 32): steps due after confirmation, sent through the ledger
once per subscriber and step, in order, never after an unsubscribe or a suppression, and
a weekly send going out takes a new subscriber in after their welcome.

Real databases (SQLite and PostgreSQL), the real SMTP sink, the product clock moved by
the test (never a sleep)."""

from __future__ import annotations

import email
import email.policy
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from newsletter.audience.optin import confirm, request_subscription
from newsletter.audience.service import suppress, unsubscribe
from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import IssueFormatError, NewsletterError, StateError
from newsletter.delivery import welcome
from newsletter.delivery.run import drive_inline
from newsletter.delivery.welcome_due import plan_due
from newsletter.models import Delivery, Send, Subscriber, WelcomeStep
from newsletter.schedule.tick import tick
from tests.factories import seed

STEP1 = """---
title: 欢迎加入政策周报
---

感谢订阅！第一封欢迎邮件。[往期归档](https://news.example.org/archive/weekly/)
"""
STEP2 = """---
title: 这两天最受欢迎的文章
---

第二封欢迎邮件：精选文章。
"""


def _sink(settings, port):  # type: ignore[no-untyped-def]
    reset_settings(settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))


def _subjects(sink, rcpt: str) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for _f, rcpts, data in sink.messages:
        if rcpt in rcpts:
            msg = email.message_from_bytes(data, policy=email.policy.default)
            out.append(str(msg["Subject"]))
    return out


def _join(addr: str, list_id: int) -> int:
    """Subscribe ``addr`` through the real opt-in and confirm it; returns the subscriber."""
    res = request_subscription(addr, list_id)
    assert res.outcome == "sent" and res.mail is not None
    sid, _ = confirm(res.mail[2])
    return sid


def _series(list_id: int, *steps: tuple[str, str]) -> list[int]:
    ids = []
    with session_scope() as s:
        for source, delay in steps:
            step, _ = welcome.add_step(s, list_id, source, delay, "editor@example.org")
            ids.append(step.id)
    return ids


def _drive_due(now=None) -> list[int]:  # type: ignore[no-untyped-def]
    due = plan_due(now)
    for send_id in due:
        drive_inline(send_id, max_wait=0)
    return due


def test_a_confirmed_subscriber_gets_step_one_at_once_and_step_two_after_its_delay(
    any_db, smtp_sink, moved_clock
) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _sink(any_db, port)
    ids = seed(3)  # three readers who were on the list before the series existed
    _series(ids["list"], (STEP1, "立即"), (STEP2, "2 天后"))
    moved_clock.advance(1)
    sid = _join("new@example.com", ids["list"])
    due = tick(moved_clock.at)  # the scheduler's tick finds step 1 due at once
    assert len(due) == 1
    drive_inline(due[0], max_wait=0)
    assert _subjects(sink, "new@example.com") == ["欢迎加入政策周报"]
    # nobody who was on the list before the series was added is welcomed
    assert len(sink.messages) == 1
    moved_clock.advance(86400)  # one day: step 2 is not due yet
    assert _drive_due(moved_clock.at) == []
    moved_clock.advance(86400 + 60)
    _drive_due(moved_clock.at)
    assert _subjects(sink, "new@example.com") == ["欢迎加入政策周报", "这两天最受欢迎的文章"]
    moved_clock.advance(30 * 86400)  # and never again
    _drive_due(moved_clock.at)
    assert len(_subjects(sink, "new@example.com")) == 2
    with session_scope() as s:
        steps = welcome.steps(s, ids["list"])
        stats = [welcome.step_stats(s, st) for st in steps]
        assert [st["sent"] for st in stats] == [1, 1]
        assert s.scalar(select(func.count()).where(Delivery.subscriber_id == sid)) == 2
        assert s.get(Send, steps[0].send_id).state == "sending"  # the step's send stands


def test_an_unsubscribe_between_steps_stops_the_series(any_db, smtp_sink, moved_clock) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _sink(any_db, port)
    ids = seed(1)
    _series(ids["list"], (STEP1, "0"), (STEP2, "2d"))
    moved_clock.advance(1)
    sid = _join("leaver@example.com", ids["list"])
    _drive_due(moved_clock.at)
    assert _subjects(sink, "leaver@example.com") == ["欢迎加入政策周报"]
    with session_scope() as s:
        unsubscribe(s, sid, ids["list"])
    moved_clock.advance(3 * 86400)
    assert _drive_due(moved_clock.at) == []
    assert _subjects(sink, "leaver@example.com") == ["欢迎加入政策周报"]


def test_unsubscribed_after_planning_is_skipped_before_smtp(any_db, smtp_sink, moved_clock) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _sink(any_db, port)
    ids = seed(1)
    (step_id,) = _series(ids["list"], (STEP1, "立即"))
    moved_clock.advance(1)
    sid = _join("late@example.com", ids["list"])
    due = plan_due(moved_clock.at)  # planned: a queued row in the ledger …
    with session_scope() as s:
        unsubscribe(s, sid, None)  # … then the reader leaves every list before it goes
    for send_id in due:
        drive_inline(send_id, max_wait=0)
    assert _subjects(sink, "late@example.com") == []
    with session_scope() as s:
        step = s.get(WelcomeStep, step_id)
        assert welcome.step_stats(s, step)["skipped"] == 1


def test_a_suppressed_subscriber_gets_nothing(any_db, smtp_sink, moved_clock) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _sink(any_db, port)
    ids = seed(1)
    _series(ids["list"], (STEP1, "立即"), (STEP2, "1 小时后"))
    moved_clock.advance(1)
    _join("bounced@example.com", ids["list"])
    _join("fine@example.com", ids["list"])
    with session_scope() as s:
        suppress(s, "bounced@example.com", "hard_bounce")
    moved_clock.advance(7200)
    _drive_due(moved_clock.at)
    _drive_due(moved_clock.at)
    assert _subjects(sink, "bounced@example.com") == []
    assert len(_subjects(sink, "fine@example.com")) == 2


def test_two_schedulers_at_once_plan_each_step_once(pg_settings, smtp_sink, moved_clock) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _sink(pg_settings, port)
    ids = seed(1)
    _series(ids["list"], (STEP1, "立即"), (STEP2, "1 天后"))
    moved_clock.advance(1)
    readers = [f"r{i}@example.net" for i in range(12)]
    for addr in readers:
        _join(addr, ids["list"])
    moved_clock.advance(2 * 86400)
    errors: list[BaseException] = []

    for _round in range(3):  # three rounds of two ticks racing (step 2 waits for step 1)
        gate = threading.Barrier(2)

        def race(gate: threading.Barrier = gate) -> None:
            try:
                gate.wait(timeout=30)
                for send_id in tick(moved_clock.at):
                    drive_inline(send_id, max_wait=0)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=race) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    got = Counter(r for _f, rs, _d in sink.messages for r in rs)
    assert {a: got[a] for a in readers} == dict.fromkeys(readers, 2)
    with session_scope() as s:
        rows = s.execute(
            select(Delivery.send_id, Delivery.subscriber_id, func.count())
            .join(Send, Send.id == Delivery.send_id)
            .where(Send.kind == "welcome")
            .group_by(Delivery.send_id, Delivery.subscriber_id)
        ).all()
        assert len(rows) == 24 and {n for *_k, n in rows} == {1}


def test_a_reader_who_joins_during_a_weekly_send_is_welcomed_first_then_gets_the_issue_once(
    any_db, smtp_sink, moved_clock
) -> None:  # type: ignore[no-untyped-def]
    from newsletter.delivery.run import start, step

    port, sink = smtp_sink
    _sink(any_db, port)
    ids = seed(4)
    _series(ids["list"], (STEP1, "立即"))
    start(ids["send"])  # the weekly send is going out …
    assert step(ids["send"], batch_size=2).action == "again"
    moved_clock.advance(5)
    _join("midweek@example.com", ids["list"])  # … when a reader joins
    assert _subjects(sink, "midweek@example.com") == []
    first = _drive_due(moved_clock.at)  # tick 1: the welcome (the weekly send waits)
    assert ids["send"] not in first
    assert _subjects(sink, "midweek@example.com") == ["欢迎加入政策周报"]
    assert ids["send"] in _drive_due(moved_clock.at)  # tick 2: taken into the weekly send
    assert ids["send"] not in _drive_due(moved_clock.at)  # tick 3: nobody taken in twice
    drive_inline(ids["send"], max_wait=0)
    subjects = _subjects(sink, "midweek@example.com")
    assert subjects == ["欢迎加入政策周报", "营商环境政策周报 第47期"]
    got = Counter(r for _f, rs, _d in sink.messages for r in rs)
    assert got.pop("midweek@example.com") == 2  # the welcome and the issue
    assert len(got) == 4 and set(got.values()) == {1}  # the others: the issue, once
    with session_scope() as s:
        assert s.get(Send, ids["send"]).state == "finished"


def test_lint_refuses_a_broken_step_and_nothing_is_saved(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    ids = seed(1)
    bad = "---\ntitle: 欢迎\n---\n\n![x](../../etc/passwd)\n"  # outside every folder
    with session_scope() as s, pytest.raises(IssueFormatError) as err:
        welcome.add_step(s, ids["list"], bad, "立即", "editor@example.org")
    assert getattr(err.value, "code", None) == "welcome.lint"
    with session_scope() as s, pytest.raises(IssueFormatError) as err:
        welcome.add_step(s, ids["list"], "no front matter here", "立即", "e@example.org")
    assert getattr(err.value, "code", None) == "welcome.lint"
    with session_scope() as s, pytest.raises(StateError) as err:
        welcome.add_step(s, ids["list"], STEP1, "明年某天", "editor@example.org")
    assert getattr(err.value, "code", None) == "welcome.bad_delay"
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(WelcomeStep)) == 0


def test_at_most_five_steps_and_reorder_keeps_positions_dense(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    ids = seed(1)
    made = _series(ids["list"], *[(STEP1.replace("欢迎加入", f"第{i}封"), f"{i} 天后")
                                  for i in range(5)])  # fmt: skip
    with session_scope() as s, pytest.raises(StateError) as err:
        welcome.add_step(s, ids["list"], STEP2, "立即", "editor@example.org")
    assert getattr(err.value, "code", None) == "welcome.too_many"
    with session_scope() as s:
        welcome.move_step(s, ids["list"], made[4], "up", "editor@example.org")
        welcome.delete_step(s, ids["list"], made[0], "editor@example.org")
    with session_scope() as s:
        order = [(st.id, st.position) for st in welcome.steps(s, ids["list"])]
    assert order == [(made[1], 1), (made[2], 2), (made[4], 3), (made[3], 4)]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("立即", 0), ("2 天后", 172800), ("3小时后", 10800), ("1 周后", 604800), ("90", 90),
     ("2d", 172800), ("after 2 days", 172800), ("2 天", 172800), ("soon", None), ("-1", None), ("400 天后", None)],
)  # fmt: skip
def test_delays_are_read_in_chinese_and_short_forms(text: str, seconds: int | None) -> None:
    if seconds is None:
        with pytest.raises(NewsletterError):
            welcome.parse_delay(text)
    else:
        assert welcome.parse_delay(text) == seconds
        assert welcome.parse_delay(welcome.delay_text(seconds)["zh"]) == seconds


def test_a_welcome_issue_is_not_an_issue(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    from newsletter.issues.review import approve
    from newsletter.models import Issue

    ids = seed(1)
    (step_id,) = _series(ids["list"], (STEP1, "立即"))
    with session_scope() as s:
        issue = s.get(Issue, s.get(WelcomeStep, step_id).issue_id)
        assert issue.kind == "welcome" and issue.number < 0
        with pytest.raises(StateError) as err:
            approve(s, issue, "admin@example.org")
        assert getattr(err.value, "code", None) == "welcome.not_an_issue"
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 1


def _import(tmp_path, name: str, list_name: str, emails: list[str], **kw) -> None:  # type: ignore[no-untyped-def]
    from newsletter.audience.importer import import_file

    path = tmp_path / name
    path.write_text("email,name\n" + "".join(f"{e},读者\n" for e in emails), encoding="utf-8")
    import_file(path, list_name, **kw)


def test_an_import_starts_the_series_only_when_asked_and_only_for_the_people_it_adds(
    any_db, smtp_sink, moved_clock, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Without ``welcome`` an imported list is never welcomed; with it, the people the
    import adds are (both the all-new COPY path and the path with known addresses on
    PostgreSQL), and people already on the list are not welcomed again."""
    from newsletter.models import MailingList

    port, sink = smtp_sink
    _sink(any_db, port)
    ids = seed(1)
    with session_scope() as s:
        list_name = s.get(MailingList, ids["list"]).name
    _series(ids["list"], (STEP1, "立即"))
    moved_clock.advance(1)
    _import(tmp_path, "old.csv", list_name, ["old1@example.com", "old2@example.com"])
    _import(tmp_path, "fresh.csv", list_name, ["fresh@example.com"], welcome=True)
    # a file mixing a known reader with a new one, welcomed: only the new one is
    _import(
        tmp_path, "mixed.csv", list_name, ["old1@example.com", "mixed@example.com"], welcome=True
    )
    _drive_due(moved_clock.at)
    welcomed = sorted(r for _f, rcpts, _d in sink.messages for r in rcpts)
    assert welcomed == ["fresh@example.com", "mixed@example.com"]
    moved_clock.advance(7 * 86400)
    assert _drive_due(moved_clock.at) == []  # and nobody twice
    assert len(sink.messages) == 2


def test_a_subscriber_added_by_hand_is_welcomed_only_when_asked(
    any_db, smtp_sink, moved_clock
) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from newsletter.cli.main import app
    from newsletter.models import MailingList

    port, sink = smtp_sink
    _sink(any_db, port)
    ids = seed(1)
    with session_scope() as s:
        list_name = s.get(MailingList, ids["list"]).name
    _series(ids["list"], (STEP1, "0"))
    moved_clock.advance(1)
    runner = CliRunner()
    for addr, extra in (("quiet@example.com", []), ("hello@example.com", ["--welcome"])):
        res = runner.invoke(app, ["subscribers", "add", addr, "--list", list_name, *extra])
        assert res.exit_code == 0, res.output
    _drive_due(moved_clock.at)
    assert [r for _f, rcpts, _d in sink.messages for r in rcpts] == ["hello@example.com"]


def test_a_welcome_step_delivered_is_an_event_for_the_webhooks(
    pg_settings, smtp_sink, moved_clock
) -> None:  # type: ignore[no-untyped-def]
    """A welcome step goes through the ledger, so its deliveries are events like an
    issue's: one ``message.delivered`` per subscriber and step, naming the step's send."""
    from newsletter.core.events import WebhookOutbox
    from newsletter.core.safety.pinned import set_resolver
    from newsletter.delivery import eventhooks

    port, sink = smtp_sink
    _sink(pg_settings, port)
    ids = seed(1)
    set_resolver(lambda host, port: ["127.0.0.2"], public=frozenset({"127.0.0.2"}))
    try:
        with session_scope() as s:
            eventhooks.create_endpoint(
                s, "https://hooks.example.test/in", ["message.delivered"], "test"
            )
    finally:
        set_resolver(None)
    (step_id,) = _series(ids["list"], (STEP1, "立即"))
    moved_clock.advance(1)
    sid = _join("hooked@example.com", ids["list"])
    _drive_due(moved_clock.at)
    moved_clock.advance(7 * 86400)
    _drive_due(moved_clock.at)
    assert _subjects(sink, "hooked@example.com") == ["欢迎加入政策周报"]
    with session_scope() as s:
        send_id = s.get(WelcomeStep, step_id).send_id
        events = s.execute(
            select(WebhookOutbox.type, WebhookOutbox.subscriber_id, WebhookOutbox.payload)
        ).all()
    delivered = [(t, sub, p["data"]["send_id"]) for t, sub, p in events]
    assert delivered == [("message.delivered", sid, send_id)]
