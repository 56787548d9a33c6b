"""Scheduling with a controllable clock: slots, DST, exactly-once firing, grace, refusals."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from newsletter.core.db import session_scope
from newsletter.core.errors import StateError
from newsletter.delivery.run import start
from newsletter.issues.review import approve
from newsletter.issues.store import create_issue
from newsletter.models import AuditLog, Delivery, Issue, Publication, Send
from newsletter.schedule.slots import (
    ScheduleError,
    next_slot,
    schedule_send,
    set_schedule,
)
from newsletter.schedule.tick import tick
from tests.conftest import EXAMPLES
from tests.factories import seed

UTC = dt.UTC


@pytest.mark.parametrize(
    "tz", ["Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Sydney"]
)
def test_weekly_slots_across_a_year_keep_local_time(tz: str) -> None:
    t = dt.datetime(2026, 1, 1, tzinfo=UTC)
    seen = []
    for _ in range(53):
        t = next_slot(1, dt.time(9, 0), tz, t)
        local = t.astimezone(ZoneInfo(tz))
        assert (local.isoweekday(), local.hour, local.minute) == (1, 9, 0)
        seen.append(local.date())
    assert all((b - a).days == 7 for a, b in pairwise(seen))
    utc_gaps = {(b - a) for a, b in pairwise(seen)}
    assert utc_gaps == {dt.timedelta(days=7)}


def test_dst_gap_moves_forward_not_backward() -> None:
    # 2026-03-08 02:30 does not exist in New York (clocks jump 02:00 → 03:00).
    after = dt.datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    slot = next_slot(7, dt.time(2, 30), "America/New_York", after)
    local = slot.astimezone(ZoneInfo("America/New_York"))
    assert local.date() == dt.date(2026, 3, 8) and local.hour == 3


def _scheduled(at: dt.datetime, *, now: dt.datetime) -> int:
    ids = seed(5)
    with session_scope() as s:
        issue = s.get(Issue, ids["issue"])
        assert issue is not None
        issue.status = "approved"
        send = schedule_send(s, issue, list_id=ids["list"], at=at, now=now)
        s.delete(s.get(Send, ids["send"]))  # the factory's draft send is not used here
        return send.id


def test_two_beats_at_once_start_a_send_exactly_once(pg_settings) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    send_id = _scheduled(now + dt.timedelta(minutes=1), now=now)
    fire = now + dt.timedelta(minutes=1, seconds=5)
    results: list[list[int]] = []
    barrier = threading.Barrier(4)

    def beat() -> None:
        barrier.wait()
        results.append(tick(fire))

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [i for r in results for i in r]
    assert started == [send_id]


def test_restart_at_the_moment_of_firing_resumes_once(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    send_id = _scheduled(now + dt.timedelta(minutes=1), now=now)
    fire = now + dt.timedelta(minutes=1)
    assert tick(fire) == [send_id]  # claimed … and the process dies before starting it
    assert tick(fire + dt.timedelta(seconds=5)) == []  # not yet considered stalled
    later = fire + dt.timedelta(minutes=10)
    assert tick(later) == [send_id]  # the stalled planning is picked up again
    start(send_id)
    start(send_id)  # a duplicate start message is harmless
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 5


def test_missed_slot_inside_grace_starts(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    send_id = _scheduled(now + dt.timedelta(minutes=1), now=now)
    assert tick(now + dt.timedelta(hours=2)) == [send_id]


def test_missed_slot_beyond_grace_waits_and_alerts_once(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    send_id = _scheduled(now + dt.timedelta(minutes=1), now=now)
    late = now + dt.timedelta(hours=7)
    assert tick(late) == [] and tick(late + dt.timedelta(minutes=1)) == []
    with session_scope() as s:
        assert s.scalar(select(Send.state).where(Send.id == send_id)) == "scheduled"
        alerts = s.scalars(select(AuditLog).where(AuditLog.action == "notify.missed")).all()
    assert len(alerts) == 1 and f"send {send_id}" in alerts[0].detail["subject"]


def test_refusals_are_clear(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    ids = seed(1)
    with session_scope() as s:
        pub = s.get(Publication, ids["publication"])
        issue = s.get(Issue, ids["issue"])
        assert pub is not None and issue is not None
        with pytest.raises(ScheduleError, match="unknown time zone"):
            set_schedule(s, pub, weekday=1, time="09:00", tz="Asia/Beijing")
        with pytest.raises(ScheduleError, match="HH:MM"):
            set_schedule(s, pub, weekday=1, time="9am", tz="Asia/Shanghai")
        issue.status = "draft"
        with pytest.raises(ScheduleError, match="only an approved issue"):
            schedule_send(s, issue, list_id=ids["list"], at=now + dt.timedelta(days=1), now=now)
        approve(s, issue, "editor@example.org")
        with pytest.raises(ScheduleError, match="in the past"):
            schedule_send(s, issue, list_id=ids["list"], at=now - dt.timedelta(days=1), now=now)
        at = now + dt.timedelta(days=1)
        schedule_send(s, issue, list_id=ids["list"], at=at, now=now)
        with pytest.raises(ScheduleError, match="already taken"):
            schedule_send(s, issue, list_id=ids["list"], at=at, now=now)


def test_tick_schedules_next_approved_issue_and_warns_when_none(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    ids = seed(2)
    with session_scope() as s:
        pub = s.get(Publication, ids["publication"])
        issue = s.get(Issue, ids["issue"])
        assert pub is not None and issue is not None
        set_schedule(s, pub, weekday=1, time="09:00", tz="Asia/Shanghai", default_list="周报订阅")
        issue.status = "draft"
        s.delete(s.get(Send, ids["send"]))
    sunday = dt.datetime(2026, 11, 29, 4, 0, tzinfo=UTC)  # Sunday 12:00 Shanghai: 21 h ahead
    tick(sunday)
    tick(sunday + dt.timedelta(minutes=1))
    with session_scope() as s:
        warned = s.scalars(select(AuditLog).where(AuditLog.action == "notify.no_issue")).all()
        assert len(warned) == 1
        issue = s.get(Issue, ids["issue"])
        assert issue is not None
        approve(s, issue, "editor@example.org")
    tick(sunday + dt.timedelta(minutes=2))
    with session_scope() as s:
        send = s.scalars(select(Send)).one()
        assert send.state == "scheduled" and send.slot == "2026-11-30T09:00+08:00"
        assert send.scheduled_at == dt.datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def test_editing_an_approved_issue_returns_it_to_review(sqlite_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "issue.md"
    src.write_bytes((EXAMPLES / "issue-sample.md").read_bytes())
    shutil.copytree(EXAMPLES / "images", tmp_path / "images")
    with session_scope() as s:
        issue, _ = create_issue(s, src)
        approve(s, issue, "editor@example.org")
        assert issue.approved_by == "editor@example.org" and issue.approved_at is not None
    src.write_text(src.read_text(encoding="utf-8").replace("本期", "本周", 1), encoding="utf-8")
    with session_scope() as s:
        issue, _ = create_issue(s, src)
        assert issue.status == "in_review" and issue.approved_by is None


def test_approval_with_a_lint_error_is_refused(sqlite_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "issue.md"
    src.write_bytes((EXAMPLES / "issue-sample.md").read_bytes())
    (tmp_path / "images").mkdir()  # the images are missing: a lint error
    with session_scope() as s:
        issue, _ = create_issue(s, src)
        with pytest.raises(StateError, match="lint error") as err:
            approve(s, issue, "editor@example.org")
        assert "not found" in str(err.value) and "审核" in str(err.value)
        assert issue.status == "draft" and issue.approved_by is None
    (tmp_path / "images").rmdir()
    shutil.copytree(EXAMPLES / "images", tmp_path / "images")  # fixed
    with session_scope() as s:
        issue = s.scalars(select(Issue)).one()
        approve(s, issue, "editor@example.org")
        assert issue.status == "approved"


def test_four_eyes_keeps_the_uploader_and_last_editor_from_approving(
    sqlite_settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "issue.md"
    src.write_bytes((EXAMPLES / "issue-sample.md").read_bytes())
    shutil.copytree(EXAMPLES / "images", tmp_path / "images")
    with session_scope() as s:
        issue, _ = create_issue(s, src, actor="zhou@example.org")
        with pytest.raises(StateError, match="four-eyes"):
            approve(s, issue, "zhou@example.org")
    src.write_text(src.read_text(encoding="utf-8").replace("本期", "本周", 1), encoding="utf-8")
    with session_scope() as s:
        issue, _ = create_issue(s, src, actor="li@example.org")  # li edits it
        with pytest.raises(StateError, match="four-eyes"):
            approve(s, issue, "li@example.org")
        approve(s, issue, "wang@example.org")  # a third person may
        assert issue.status == "approved"
    # the rule is per publication, on by default
    src.write_text(src.read_text(encoding="utf-8").replace("本周", "这周", 1), encoding="utf-8")
    with session_scope() as s:
        issue, _ = create_issue(s, src, actor="li@example.org")
        pub = s.get(Publication, issue.publication_id)
        assert pub is not None and pub.four_eyes
        pub.four_eyes = False
        approve(s, issue, "li@example.org")
        assert issue.status == "approved"


def test_moving_the_weekly_time_moves_the_placed_issues_and_keeps_their_order(
    sqlite_settings, tmp_path: Path, moved_clock
) -> None:  # type: ignore[no-untyped-def]
    """#60 placed on Monday 09:00, then the slot moves to Monday 08:00: #60 moves with it, and
    #61 never goes out before #60 (the bug: #61 took 08:00 while #60 waited for 09:00)."""
    ids = seed(2)
    sunday = dt.datetime(2026, 11, 29, 4, 0, tzinfo=UTC)  # Sunday 12:00 Shanghai
    moved_clock.at = sunday
    with session_scope() as s:
        pub = s.get(Publication, ids["publication"])
        assert pub is not None
        set_schedule(s, pub, weekday=1, time="09:00", tz="Asia/Shanghai", default_list="周报订阅")
        s.delete(s.get(Send, ids["send"]))
    tick(sunday)  # places issue #47 on Monday 09:00
    with session_scope() as s:
        placed = s.scalars(select(Send)).one()
        assert placed.slot == "2026-11-30T09:00+08:00"
        # a later issue is approved meanwhile
        shutil.copytree(EXAMPLES / "images", tmp_path / "images")
        later = (
            (EXAMPLES / "issue-sample.md").read_text("utf-8").replace("number: 47", "number: 48")
        )
        (tmp_path / "i48.md").write_text(later, "utf-8")
        issue48, _ = create_issue(s, tmp_path / "i48.md", actor="editor-a")
        approve(s, issue48, "editor-b")
        pub = s.get(Publication, ids["publication"])
        assert pub is not None
        set_schedule(s, pub, weekday=1, time="08:00", tz="Asia/Shanghai", actor="ops")
    with session_scope() as s:
        moved = s.scalars(select(Send)).one()
        assert moved.slot == "2026-11-30T08:00+08:00"
        assert moved.scheduled_at == dt.datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
        assert s.scalars(select(AuditLog).where(AuditLog.action == "schedule.move")).one()
    tick(sunday + dt.timedelta(minutes=1))  # the moved slot is taken: #48 waits for next week
    with session_scope() as s:
        by_issue = {
            n: at
            for n, at in s.execute(
                select(Issue.number, Send.scheduled_at).join(Send, Send.issue_id == Issue.id)
            ).all()
        }
        assert set(by_issue) == {47}


def test_the_tick_never_puts_an_issue_before_an_earlier_one_that_waits(
    sqlite_settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ids = seed(2)
    sunday = dt.datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
    with session_scope() as s:
        pub = s.get(Publication, ids["publication"])
        assert pub is not None
        pub.schedule_weekday, pub.schedule_time, pub.timezone = 1, "09:00", "Asia/Shanghai"
        pub.default_list_id = ids["list"]
        send = s.get(Send, ids["send"])
        assert send is not None  # #47 given an explicit time two weeks out
        send.state, send.scheduled_at = "scheduled", dt.datetime(2026, 12, 14, 1, 0, tzinfo=UTC)
        shutil.copytree(EXAMPLES / "images", tmp_path / "images")
        later = (
            (EXAMPLES / "issue-sample.md").read_text("utf-8").replace("number: 47", "number: 48")
        )
        (tmp_path / "i48.md").write_text(later, "utf-8")
        issue48, _ = create_issue(s, tmp_path / "i48.md", actor="editor-a")
        approve(s, issue48, "editor-b")
    tick(sunday)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Send)) == 1  # #48 was not placed
