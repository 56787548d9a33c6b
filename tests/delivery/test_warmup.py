"""Warm-up: a send larger than today's allowance is spread over days (simulated clock),
most engaged first, exactly once, with the per-recipient-domain cap held; through a real
SMTP server (aiosmtpd)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.core.clock import set_clock
from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery import warmup
from newsletter.delivery.batch import process_batch
from newsletter.delivery.run import start
from newsletter.delivery.sends import maybe_finish
from newsletter.devtools.sink import SinkHandler, start_sink
from newsletter.models import Delivery, Event, Issue, Send, Subscriber, Subscription
from tests.factories import seed

T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


class SimClock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> dt.datetime:
        return self.t

    def next_day(self) -> None:
        self.t = warmup.day_start(warmup.day_of(self.t) + dt.timedelta(days=1)) + dt.timedelta(
            hours=1
        )


@pytest.fixture
def sim() -> Iterator[SimClock]:
    clock = SimClock()
    set_clock(clock)
    yield clock
    set_clock(None)


def _add_readers(ids: dict[str, int], n: int, first: int) -> None:
    """``n`` more readers on the seeded list; every fifth at gmail.com, the others spread."""
    domains = ["gmail.com", "qq.com", "163.com", "example.com", "outlook.com"]
    with session_scope() as s:
        rows = [
            {"email": f"r{i}@{domains[i % 5]}", "name": f"读者{i}", "variant": "zh-Hans"}
            for i in range(first, first + n)
        ]
        s.execute(insert(Subscriber), rows)
        sub_ids = s.scalars(select(Subscriber.id).where(Subscriber.email.like("r%"))).all()
        s.execute(
            insert(Subscription),
            [{"subscriber_id": i, "list_id": ids["list"], "status": "active"} for i in sub_ids],
        )


def _engage(ids: dict[str, int], emails: list[str]) -> None:
    """Human opens and clicks of an earlier issue for these readers (machine opens for others)."""
    with session_scope() as s:
        old = Issue(publication_id=ids["publication"], number=46, title="第46期",
                    source_text="", source_hash="1" * 64, status="sent")  # fmt: skip
        s.add(old)
        s.flush()
        send = Send(publication_id=ids["publication"], issue_id=old.id, list_id=ids["list"],
                    channel="email", state="finished")  # fmt: skip
        s.add(send)
        s.flush()
        subs = dict(s.execute(select(Subscriber.email, Subscriber.id)).all())
        machine = [e for e in list(subs)[:400] if e not in set(emails)]
        for i, email in enumerate([*emails, *machine]):
            d = Delivery(send_id=send.id, subscriber_id=subs[email], state="sent")
            s.add(d)
            s.flush()
            human = i < len(emails)
            kinds = ["open", "click"] if human and i % 2 else ["open"]
            for kind in kinds:
                s.add(Event(uid=uuid.uuid4().hex, send_id=send.id, delivery_id=d.id, kind=kind,
                            cls="human" if human else "machine", occurred_at=T0 - dt.timedelta(days=7)))  # fmt: skip


def _run_days(send_id: int, sim: SimClock, max_days: int = 10) -> int:
    for day in range(1, max_days + 1):
        while process_batch(send_id).claimed:
            pass
        if maybe_finish(send_id):
            return day
        sim.next_day()
    raise AssertionError("not finished")


def test_ten_thousand_readers_with_a_ramp_of_2000_a_day_take_five_days_most_engaged_first(
    pg_settings: Settings, sim: SimClock
) -> None:
    handler = SinkHandler()
    seen: dict[str, list[dt.date]] = defaultdict(list)

    def stamp(envelope: object) -> None:
        for r in envelope.rcpt_tos:  # type: ignore[attr-defined]
            seen[r].append(warmup.day_of(sim()))

    handler.on_data = stamp
    ctrl, _ = start_sink(handler)
    try:
        s = pg_settings.model_copy(
            update={
                "smtp_host": "127.0.0.1",
                "smtp_port": ctrl.port,
                "batch_size": 500,
                "warmup_domains": {
                    "example.org": {"schedule": [2000], "shares": {"gmail.com": 0.3}}
                },
            }
        )
        reset_settings(s)
        ids = seed(0)
        _add_readers(ids, 10_000, 0)
        engaged = [
            f"r{i}@{['gmail.com', 'qq.com', '163.com', 'example.com', 'outlook.com'][i % 5]}"
            for i in range(9_999, 9_699, -1)
        ]  # the last ids: claimed last without ranking
        _engage(ids, engaged)
        start(ids["send"])
        with session_scope() as ss:
            plan = warmup.send_plan(ss, ids["send"])
        assert list(plan.values()) == [2000] * 5  # the console's view of the plan
        days = _run_days(ids["send"], sim)
    finally:
        ctrl.stop()

    assert days == 5
    # exactly once, nobody lost
    assert len(seen) == 10_000 and all(len(v) == 1 for v in seen.values())
    per_day = Counter(v[0] for v in seen.values())
    assert sorted(per_day.values()) == [2000] * 5
    day1 = min(per_day)
    assert all(seen[e][0] == day1 for e in engaged)  # most engaged first
    gmail = Counter(v[0] for r, v in seen.items() if r.endswith("@gmail.com"))
    assert max(gmail.values()) <= 600  # 30% of 2000
    with session_scope() as ss:
        relays = set(ss.scalars(select(Delivery.relay).where(Delivery.send_id == ids["send"])))
        assert relays == {"default"}
        counts = warmup.used(ss, "example.org", day1)
        assert counts["*"] == 2000 and counts["gmail.com"] <= 600


def test_cap_holds_across_sends_and_without_a_plan_at_start(
    sqlite_settings: Settings, sim: SimClock
) -> None:
    """Two sends of one domain share the day's allowance, even when neither was planned
    for warm-up (the plan is set after they started): the per-message cap decides."""
    ids = seed(300)
    start(ids["send"])
    with session_scope() as s:
        warmup.set_plan(s, "example.org", schedule=[100, 150])
    while process_batch(ids["send"]).claimed:
        pass
    with session_scope() as s:
        sent = s.scalar(select(Send.id).where(Send.id == ids["send"]))
        assert sent
        n = len(s.scalars(select(Delivery.id).where(Delivery.send_id == ids["send"],
                                                     Delivery.state == "sent")).all())  # fmt: skip
    assert n == 100
    sim.next_day()
    while process_batch(ids["send"]).claimed:
        pass
    assert not maybe_finish(ids["send"])
    sim.next_day()
    while process_batch(ids["send"]).claimed:
        pass
    assert maybe_finish(ids["send"])  # 100 + 150 + 150 (the last value holds)


def test_warmup_cli_set_and_show(sqlite_settings: Settings, sim: SimClock) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["warmup", "set", "brief.example.cn", "--schedule", "50,100,200",
                            "--share", "gmail.com=0.4", "--start", "2026-11-30"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["warmup", "show", "--json"])
    (plan,) = json.loads(r.output)
    assert plan["domain"] == "brief.example.cn" and plan["day"] == 1
    assert plan["today_allowance"] == 100 and plan["shares"] == {"gmail.com": 0.4}
    r = runner.invoke(app, ["warmup", "set", "brief.example.cn", "--schedule", "50,x"])
    assert r.exit_code != 0
    r = runner.invoke(app, ["warmup", "set", "brief.example.cn", "--off"])
    assert r.exit_code == 0
    assert json.loads(runner.invoke(app, ["warmup", "show", "--json"]).output) == []


def test_a_send_waiting_for_a_later_day_is_not_revived_by_every_tick(
    sqlite_settings: Settings, sim: SimClock
) -> None:
    from newsletter.delivery.run import MAX_LATER, step
    from newsletter.schedule.tick import tick

    ids = seed(150)
    with session_scope() as s:
        warmup.set_plan(s, "example.org", schedule=[100])
    start(ids["send"])
    while process_batch(ids["send"]).claimed:
        pass
    nxt = step(ids["send"])
    assert nxt.action == "later" and nxt.delay == MAX_LATER  # a day away: wake up now and then
    assert ids["send"] not in tick(sim() + dt.timedelta(minutes=10))  # nothing due: no revival
    sim.next_day()
    assert ids["send"] in tick(sim() + dt.timedelta(minutes=10))  # due again: revived
    while process_batch(ids["send"]).claimed:
        pass
    assert maybe_finish(ids["send"])
