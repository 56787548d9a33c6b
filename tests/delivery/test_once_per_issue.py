"""Readers count per issue: two sends of one issue never reach a reader twice,
unless an audited resend says so; a resend after a crash keeps its Message-ID;
pause is obeyed between messages; a send that cannot start fails loudly."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.run import drive_inline, start
from newsletter.delivery.sends import plan, transition
from newsletter.models import AuditLog, Delivery, Issue, Publication, Send
from newsletter.schedule.slots import schedule_send
from newsletter.schedule.tick import tick
from tests.factories import draft_send_to_one_reader, seed
from tests.waiting import wait_for

UTC = dt.UTC


def _use_sink(settings, port):  # type: ignore[no-untyped-def]
    s = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    reset_settings(s)
    return s


def _rcpts(sink) -> Counter[str]:  # type: ignore[no-untyped-def]
    return Counter(r for _f, rs, _d in sink.messages for r in rs)


def _second_send(ids: dict[str, int], **values: object) -> int:
    with session_scope() as s:
        send = Send(
            publication_id=ids["publication"],
            issue_id=ids["issue"],
            list_id=ids["list"],
            channel="email",
            state="draft",
            **values,
        )
        s.add(send)
        s.flush()
        return send.id


def test_scheduler_and_a_manual_start_reach_each_reader_once(any_db, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _use_sink(any_db, port)
    ids = seed(20)
    now = dt.datetime.now(UTC)
    with session_scope() as s:  # ops saved the weekly slot: the issue is scheduled …
        issue = s.get(Issue, ids["issue"])
        scheduled = schedule_send(
            s, issue, list_id=ids["list"], at=now + dt.timedelta(minutes=1), now=now
        ).id
    assert drive_inline(ids["send"]) == "finished"  # … and ops also started a copy by hand
    assert tick(now + dt.timedelta(minutes=1, seconds=5)) == [scheduled]
    assert drive_inline(scheduled) == "finished"
    counts = _rcpts(sink)
    assert len(counts) == 20 and set(counts.values()) == {1}
    with session_scope() as s:
        second = s.get(Send, scheduled)
        assert second.planned_count == 0 and second.already_received == 20
    r = CliRunner().invoke(app, ["send", "status", str(scheduled), "--json"])
    assert '"already_received": 20' in r.stdout


def test_a_reader_added_later_gets_the_issue_from_the_second_send(any_db, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    from newsletter.models import Subscriber, Subscription

    port, sink = smtp_sink
    _use_sink(any_db, port)
    ids = seed(5)
    drive_inline(ids["send"])
    with session_scope() as s:
        sub = Subscriber(email="late@example.com", name="晚到", variant="zh-Hans")
        s.add(sub)
        s.flush()
        s.add(Subscription(subscriber_id=sub.id, list_id=ids["list"], status="active"))
    second = _second_send(ids)
    assert drive_inline(second) == "finished"
    counts = _rcpts(sink)
    assert counts["late@example.com"] == 1 and len(counts) == 6 and set(counts.values()) == {1}


def test_two_plans_at_the_same_moment_never_share_a_reader(pg_settings) -> None:  # type: ignore[no-untyped-def]
    ids = seed(300)
    sends = [ids["send"], _second_send(ids), _second_send(ids)]
    for sid in sends:
        with session_scope() as s:
            transition(s, sid, "plan")
            s.execute(update(Send).where(Send.id == sid).values(state="sending"))
    barrier = threading.Barrier(len(sends))
    errors: list[BaseException] = []

    def go(sid: int) -> None:
        try:
            barrier.wait()
            with session_scope() as s:
                plan(s, sid)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(sid,)) for sid in sends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with session_scope() as s:
        per_reader = s.execute(
            select(Delivery.subscriber_id, func.count()).group_by(Delivery.subscriber_id)
        ).all()
    assert len(per_reader) == 300 and {n for _i, n in per_reader} == {1}


def test_resend_needs_a_reason_and_is_audited(sqlite_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _use_sink(sqlite_settings, port)
    ids = seed(4)
    drive_inline(ids["send"])
    runner = CliRunner()
    r = runner.invoke(app, ["send", "create", "#47", "--list", "周报订阅"])
    assert r.exit_code == 0 and "--resend" in r.output  # warned: readers will be skipped
    r = runner.invoke(app, ["send", "create", str(ids["issue"]), "--list", "周报订阅",
                            "--resend", "  ", "--json"])  # fmt: skip
    assert r.exit_code != 0 and "reason" in r.output
    r = runner.invoke(app, ["send", "create", str(ids["issue"]), "--list", "周报订阅",
                            "--resend", "更正了第二条的文号", "--by", "ops@example.org", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    import json

    resend = json.loads(r.stdout)["send_id"]
    assert drive_inline(resend) == "finished"
    counts = _rcpts(sink)
    assert len(counts) == 4 and set(counts.values()) == {2}
    with session_scope() as s:
        row = s.scalars(select(AuditLog).where(AuditLog.action == "send.resend")).one()
        assert row.actor == "ops@example.org" and row.detail["reason"] == "更正了第二条的文号"


def test_a_copy_resent_after_a_crash_keeps_its_message_id(any_db, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    _use_sink(any_db, port)
    ids = seed(3)
    drive_inline(ids["send"])
    first = {rs[0]: email.message_from_bytes(d, policy=email.policy.default)["Message-ID"]
             for _f, rs, d in sink.messages}  # fmt: skip
    with session_scope() as s:  # a worker died inside the SMTP transaction of reader1
        s.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == 2)
            .values(state="sending", lease_until=dt.datetime(2000, 1, 1))
        )
        s.execute(update(Send).values(state="sending", finished_at=None))
    assert drive_inline(ids["send"]) == "finished"
    assert len(sink.messages) == 4
    rcpt, data = sink.messages[-1][1][0], sink.messages[-1][2]
    again = email.message_from_bytes(data, policy=email.policy.default)["Message-ID"]
    assert again == first[rcpt]
    assert len(set(first.values())) == 3  # and still unique per delivery
    r = CliRunner().invoke(app, ["send", "status", str(ids["send"]), "--json"])
    assert '"at_risk": 1' in r.stdout


@pytest.mark.parametrize("group", [1, 25])
def test_pause_stops_new_transactions_within_two_seconds(any_db, smtp_sink, group: int) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    settings = _use_sink(any_db, port)
    reset_settings(settings.model_copy(update={"batch_size": 500, "send_group_size": group}))
    ids = seed(200)
    stamps: list[float] = []

    def slow(envelope: object) -> None:
        stamps.append(time.monotonic())
        time.sleep(0.02)

    sink.on_data = slow
    runner = threading.Thread(target=drive_inline, args=(ids["send"],))
    runner.start()
    wait_for(lambda: len(stamps) >= 20, timeout=60, every=0.01, what="20 messages at the sink")
    with session_scope() as s:
        transition(s, ids["send"], "pause")
    paused_at = time.monotonic()
    runner.join(timeout=30)
    late = [t for t in stamps if t > paused_at]
    # One worker: at most the group already marked (k messages; one when k = 1).
    assert len(late) <= group
    assert all(t - paused_at < 2.0 for t in late)
    with session_scope() as s:
        assert s.get(Send, ids["send"]).state == "paused"
        sent = s.scalar(select(func.count()).where(Delivery.state == "sent"))
    assert sent == len(stamps) < 200


def test_a_send_that_cannot_start_fails_loudly(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    ids = seed(2)
    with session_scope() as s:
        s.execute(update(Send).where(Send.id == ids["send"]).values(list_id=None))
    r = CliRunner().invoke(app, ["send", "start", str(ids["send"])])
    assert r.exit_code != 0 and "no audience list" in r.output
    with session_scope() as s:
        send = s.get(Send, ids["send"])
        assert send.state == "failed" and "no audience list" in (send.error or "")
    start(ids["send"])  # a second start changes nothing: the send is failed already
    with session_scope() as s:
        assert s.get(Send, ids["send"]).state == "failed"


def test_a_tick_that_loses_the_slot_race_skips_only_that_send(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    from newsletter.schedule.slots import set_schedule

    ids = seed(2)
    now = dt.datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    with session_scope() as s:
        pub = s.get(Publication, ids["publication"])
        set_schedule(s, pub, weekday=1, time="09:00", tz="Asia/Shanghai", default_list="周报订阅")
        s.delete(s.get(Send, ids["send"]))
    # another beat put a different send on the slot a moment ago
    with session_scope() as s:
        other = Issue(publication_id=ids["publication"], number=48, title="t", period="p",
                      source_text="-", source_hash="1" * 64, status="approved")  # fmt: skip
        s.add(other)
        s.flush()
        schedule_send(s, other, list_id=ids["list"], at=None, now=now, actor="other-beat")
    assert tick(now) == []  # no exception: the contested slot is skipped quietly
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Send)) == 1


def test_a_public_http_base_url_refuses_to_start(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    ids = seed(2)
    reset_settings(sqlite_settings.model_copy(update={"base_url": "http://news.example.org"}))
    r = CliRunner().invoke(app, ["send", "start", str(ids["send"])])
    assert r.exit_code != 0 and "https" in r.output
    with session_scope() as s:
        assert s.get(Send, ids["send"]).state == "failed"
    ids2 = _second_send(ids)
    reset_settings(
        sqlite_settings.model_copy(
            update={
                "base_url": "http://news.example.org",
                "allow_http_links": True,
                "smtp_host": "maildir",
            }
        )
    )
    assert drive_inline(ids2) == "finished"


def test_a_wechat_only_error_never_holds_the_email_back(
    sqlite_settings, smtp_sink, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from newsletter.issues.review import approve
    from newsletter.issues.store import create_issue, render_issue
    from newsletter.models import Rendition

    port, sink = smtp_sink
    _use_sink(sqlite_settings, port)
    huge = (
        "国务院部署深化改革，要求各地加快落实。" * 1400
    )  # one paragraph: too long for one article
    src = tmp_path / "issue.md"
    src.write_text(
        "---\ntitle: 测试周报\nnumber: 9\nperiod: 2026年11月\npublication: 测试周报\n---\n\n"
        f"导语。\n\n## 一、要闻\n\n### 1. 长文\n\n{huge}\n",
        encoding="utf-8",
    )
    with session_scope() as s:
        issue, _ = create_issue(s, src)
        approve(s, issue, "editor@example.org")  # WeChat is not configured here
        report = render_issue(s, issue.id)
        assert report["zh-Hans"]["channels"]["wechat"]["ok"] is False
        assert report["zh-Hans"]["channels"]["email"]["ok"] is True
        outputs = {r.output for r in s.query(Rendition).filter_by(issue_id=issue.id)}
        assert "email_html" in outputs and not any(o.startswith("wechat") for o in outputs)
        send = draft_send_to_one_reader(s, issue)
        send_id = send.id
    assert drive_inline(send_id) == "finished"
    assert [rs for _f, rs, _d in sink.messages] == [["reader@example.com"]]


def test_a_list_with_nobody_to_reach_ends_empty_and_the_issue_stays_unsent(
    sqlite_settings,
) -> None:  # type: ignore[no-untyped-def]
    """Issue 30: a send to a list whose members are all suppressed ended `finished` and
    marked the issue `sent`. It now ends `empty` (not `failed`, not `finished`), the
    issue stays approved, `send start` exits non-zero with one line and ops are alerted."""
    from newsletter.audience.service import suppress
    from newsletter.delivery.alerts import NEEDS_PERSON
    from newsletter.models import AuditLog, Issue

    ids = seed(3)
    with session_scope() as s:
        for i in range(3):
            suppress(s, f"reader{i}@example.com", "hard_bounce")
    out = CliRunner().invoke(app, ["send", "start", str(ids["send"])])
    assert out.exit_code != 0
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1, out.output
    assert "没有可以发送的订阅者" in lines[0] and "nothing was sent" in lines[0]
    assert lines[0].index("没有") < lines[0].index("nothing")  # Chinese first
    with session_scope() as s:
        send = s.get(Send, ids["send"])
        assert send is not None and send.state == "empty"
        issue = s.get(Issue, send.issue_id)
        assert issue is not None and issue.status == "approved"
        alerts = s.scalars(select(AuditLog).where(AuditLog.action == "notify.empty")).all()
        assert len(alerts) == 1 and alerts[0].detail["subject"].startswith(NEEDS_PERSON)
        assert not s.scalar(select(AuditLog.id).where(AuditLog.action == "notify.finished"))
    # starting it again changes nothing and sends nothing
    assert CliRunner().invoke(app, ["send", "start", str(ids["send"])]).exit_code == 0
    with session_scope() as s:
        assert s.get(Send, ids["send"]).state == "empty"  # type: ignore[union-attr]


def test_a_cancelled_send_leaves_nothing_queued_and_status_shows_the_resend_reason(
    sqlite_settings,
) -> None:  # type: ignore[no-untyped-def]
    """Issue 30: cancelled sends kept their unsent rows `queued`; the human status left out
    why a resend was made."""
    ids = seed(4)
    start(ids["send"])
    with session_scope() as s:
        s.execute(update(Send).where(Send.id == ids["send"]).values(resend_reason="链接有误，重发"))
        transition(s, ids["send"], "cancel")
    with session_scope() as s:
        states = Counter(s.scalars(select(Delivery.state).where(Delivery.send_id == ids["send"])))
    assert states == {"skipped": 4}
    out = CliRunner().invoke(app, ["send", "status", str(ids["send"])])
    assert out.exit_code == 0 and "链接有误，重发" in out.output
