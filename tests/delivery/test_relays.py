"""Several relays: failover with a relay failing 30% of its transactions, routing by From
domain and publication, weighted spreading, the relay recorded on every delivery, and two
worker processes racing one send over two relays. Real SMTP servers (aiosmtpd), no mocks."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.relays import down_relays, probe_due, relay_counts
from newsletter.delivery.run import drive_inline, start
from newsletter.devtools.sink import SinkHandler, start_sink
from newsletter.models import AuditLog, Delivery, Send, Subscriber
from tests.factories import seed

ROOT = Path(__file__).resolve().parents[2]


class Sinks:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.ctrls: list[Any] = []
        self.handlers: dict[str, SinkHandler] = {}
        self.ports: dict[str, int] = {}

    def add(self, name: str) -> SinkHandler:
        ctrl, handler = start_sink(SinkHandler(directory=self.tmp_path / f"sink-{name}"))
        self.ctrls.append(ctrl)
        self.handlers[name] = handler
        self.ports[name] = ctrl.port
        return handler

    def received(self, name: str) -> Counter[str]:
        return Counter(r for _f, rs, _d in self.handlers[name].messages for r in rs)


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[Sinks]:
    s = Sinks(tmp_path)
    yield s
    for c in s.ctrls:
        if c._thread is not None:  # a test may have stopped its relay already
            c.stop()


def _use(base: Settings, relays: list[dict[str, Any]], **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "relays": json.dumps(relays),
        "smtp_timeout": 5.0,
        "batch_size": 20,
        "relay_probe_seconds": 0.3,
        "relay_failure_burst": 5,
        "relay_failure_window": 60,
        "auto_pause_min_attempts": 1000,
    }
    values.update(extra)
    s = base.model_copy(update=values)
    reset_settings(s)
    return s


def _relay(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "host": "127.0.0.1", "port": port, **extra}


def _deliveries(send_id: int) -> list[tuple[str, str, str | None]]:
    with session_scope() as s:
        return [
            (e, st, r)
            for e, st, r in s.execute(
                select(Subscriber.email, Delivery.state, Delivery.relay)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.send_id == send_id)
            )
        ]


def _resend(send_id: int) -> int:
    with session_scope() as s:
        old = s.get(Send, send_id)
        assert old is not None
        new = Send(
            publication_id=old.publication_id,
            issue_id=old.issue_id,
            list_id=old.list_id,
            channel="email",
            state="draft",
            resend_reason="relay test: second round",
        )
        s.add(new)
        s.flush()
        return new.id


def test_failing_relay_is_taken_out_the_send_finishes_on_the_other_and_it_comes_back(
    any_db: Settings, sinks: Sinks
) -> None:
    sinks.add("good")
    flaky = sinks.add("flaky")
    rnd = random.Random(19)
    state = {"failing": True, "refused": 0}

    def thirty_percent(envelope: object) -> str | None:
        if state["failing"] and rnd.random() < 0.3:
            state["refused"] += 1
            return "451 4.3.0 temporary local problem, try again"
        return None

    flaky.on_data = thirty_percent
    _use(any_db, [_relay("good", sinks.ports["good"]), _relay("flaky", sinks.ports["flaky"])])
    ids = seed(300)
    assert drive_inline(ids["send"], max_wait=30) == "finished"

    # 0 lost, no duplicates: every reader exactly once over both sinks
    got = sinks.received("good") + sinks.received("flaky")
    readers = {f"reader{i}@example.com" for i in range(300)}
    assert set(got) == readers and max(got.values()) == 1
    assert state["refused"] > 0
    # every delivery records the relay that carried it, and that relay's sink has it
    rows = _deliveries(ids["send"])
    assert all(st == "sent" for _e, st, _r in rows)
    for email, _st, relay in rows:
        assert relay in ("good", "flaky")
        assert email in sinks.received(relay)
    with session_scope() as s:
        counts = relay_counts(s, ids["send"])
        actions = [a.action for a in s.scalars(select(AuditLog))]
        send = s.get(Send, ids["send"])
        assert send is not None and send.auto_paused_at is None
    assert counts["good"] > counts.get("flaky", 0)  # the failing relay was taken out
    assert sum(counts.values()) == 300
    assert "notify.relay_down" in actions
    assert "notify.auto_paused" not in actions  # another relay was always usable
    # the send report says per relay how many it carried
    from typer.testing import CliRunner

    from newsletter.cli.main import app

    runner = CliRunner()
    status = runner.invoke(app, ["send", "status", str(ids["send"]), "--json"])
    assert json.loads(status.output)["relays"] == counts
    text = runner.invoke(app, ["send", "status", str(ids["send"])]).output
    assert f"good {counts['good']:,}" in text
    stats = runner.invoke(app, ["stats", str(ids["send"])]).output
    assert "sent via relay good" in stats and "sent via relay flaky" in stats

    # the relay recovers: it is probed, brought back, and carries mail again
    state["failing"] = False
    probe_due(force=True)
    assert "flaky" not in down_relays(fresh=True)
    second = _resend(ids["send"])
    assert drive_inline(second, max_wait=30) == "finished"
    with session_scope() as s:
        later = relay_counts(s, second)
    assert later.get("flaky", 0) >= 100 and later["good"] >= 100  # both carry it again
    assert sinks.received("flaky").total() == counts.get("flaky", 0) + later["flaky"]


def test_connection_drops_on_one_relay_fail_over_to_the_other(
    sqlite_settings: Settings, sinks: Sinks
) -> None:
    sinks.add("a")
    b = sinks.add("b")
    b_ctrl = sinks.ctrls[-1]
    stopped = threading.Event()

    def die(envelope: object) -> str | None:
        if len(b.messages) >= 10 and not stopped.is_set():
            stopped.set()
            threading.Thread(target=b_ctrl.stop, daemon=True).start()
        return None

    b.on_data = die
    _use(sqlite_settings, [_relay("a", sinks.ports["a"]), _relay("b", sinks.ports["b"])])
    ids = seed(120)
    assert drive_inline(ids["send"], max_wait=30) == "finished"
    got = sinks.received("a") + sinks.received("b")
    assert len(got) == 120  # nobody lost
    assert sum(n - 1 for n in got.values()) <= 1  # at most the message under way on b
    assert "b" in down_relays(fresh=True)  # still unreachable: stays out
    rows = _deliveries(ids["send"])
    assert {r for _e, _s, r in rows} <= {"a", "b"}
    assert all(st == "sent" for _e, st, _r in rows)


def test_routing_by_from_domain_and_by_publication(sqlite_settings: Settings, sinks: Sinks) -> None:
    for name in ("general", "brand", "weekly"):
        sinks.add(name)
    ids = seed(30)
    # the seeded publication is "weekly", From news@example.org
    _use(
        sqlite_settings,
        [
            _relay("general", sinks.ports["general"], weight=5),
            _relay("brand", sinks.ports["brand"], from_domains=["example.org"]),
            _relay("weekly", sinks.ports["weekly"], publications=["other-publication"]),
        ],
    )
    assert drive_inline(ids["send"], max_wait=10) == "finished"
    assert sinks.received("brand").total() == 30  # reserved for the From domain
    assert sinks.received("general").total() == 0 and sinks.received("weekly").total() == 0
    assert {r for _e, _s, r in _deliveries(ids["send"])} == {"brand"}

    _use(
        sqlite_settings,
        [
            _relay("general", sinks.ports["general"]),
            _relay("weekly", sinks.ports["weekly"], publications=["weekly"]),
            _relay("brand", sinks.ports["brand"], from_domains=["brief.example.cn"]),
        ],
    )
    second = _resend(ids["send"])
    assert drive_inline(second, max_wait=10) == "finished"
    assert sinks.received("weekly").total() == 30  # reserved for the publication
    assert sinks.received("general").total() == 0

    _use(
        sqlite_settings,
        [
            _relay("general", sinks.ports["general"]),
            _relay("brand", sinks.ports["brand"], from_domains=["brief.example.cn"]),
        ],
    )
    third = _resend(ids["send"])
    assert drive_inline(third, max_wait=10) == "finished"
    assert sinks.received("general").total() == 30  # nothing reserved: the general relays


def test_weighted_spreading_is_proportional(any_db: Settings, sinks: Sinks) -> None:
    sinks.add("big")
    sinks.add("small")
    _use(
        any_db,
        [
            _relay("big", sinks.ports["big"], weight=3),
            _relay("small", sinks.ports["small"], weight=1),
        ],
    )
    ids = seed(400)
    assert drive_inline(ids["send"], max_wait=10) == "finished"
    big, small = sinks.received("big").total(), sinks.received("small").total()
    assert big + small == 400
    assert 0.70 <= big / 400 <= 0.80, (big, small)
    with session_scope() as s:
        assert relay_counts(s, ids["send"]) == {"big": big, "small": small}


def test_per_relay_rate_limit_spaces_its_messages(sqlite_settings: Settings, sinks: Sinks) -> None:
    import time

    sinks.add("slow")
    _use(sqlite_settings, [_relay("slow", sinks.ports["slow"], rate=20)])
    ids = seed(40)
    t0 = time.monotonic()
    assert drive_inline(ids["send"], max_wait=10) == "finished"
    took = time.monotonic() - t0
    assert sinks.received("slow").total() == 40
    assert took >= (40 - 20) / 20 * 0.9  # a burst of one second's worth, then 20 msg/s


_WORKER = """
import sys, time
from newsletter.delivery.run import step
send_id = int(sys.argv[1])
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    nxt = step(send_id, batch_size=10)
    if nxt.action in ("done", "stopped"):
        break
    if nxt.action == "later":
        time.sleep(min(nxt.delay, 0.5))
"""


def test_two_worker_processes_racing_one_send_over_two_relays_deliver_exactly_once(
    pg_settings: Settings, sinks: Sinks, tmp_path: Path
) -> None:
    sinks.add("a")
    sinks.add("b")
    relays = [_relay("a", sinks.ports["a"]), _relay("b", sinks.ports["b"], weight=2)]
    _use(pg_settings, relays)
    ids = seed(600)
    start(ids["send"])
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": pg_settings.database_url,
        "NEWSLETTER_SECRET_KEY": pg_settings.secret_key.get_secret_value(),
        "NEWSLETTER_BASE_URL": pg_settings.base_url,
        "NEWSLETTER_VAR_DIR": str(tmp_path / "worker-var"),
        "NEWSLETTER_BLOB_DIR": str(pg_settings.var_dir / "blobs"),
        "NEWSLETTER_RELAYS": json.dumps(relays),
        "NEWSLETTER_REDIS_URL": "",
        "NEWSLETTER_BROKER_URL": "",
        "NEWSLETTER_CONFIG": str(tmp_path / "absent.toml"),
    }
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(ids["send"])], env=env, cwd=ROOT)
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=180) == 0
    got = sinks.received("a") + sinks.received("b")
    assert len(got) == 600 and max(got.values()) == 1  # exactly once
    rows = _deliveries(ids["send"])
    assert all(st == "sent" for _e, st, _r in rows)
    assert all(email in sinks.received(r or "") for email, _st, r in rows)
    with session_scope() as s:
        send = s.get(Send, ids["send"])
        assert send is not None and send.state == "finished"
        counts = relay_counts(s, ids["send"])
    assert counts["a"] > 100 and counts["b"] > 250


def test_system_mail_and_doctor_use_the_configured_relays(
    sqlite_settings: Settings, sinks: Sinks
) -> None:
    from newsletter.delivery.doctor import run_doctor
    from newsletter.delivery.relays import connect, take_out

    for name in ("brand", "one", "two"):
        sinks.add(name)
    _use(sqlite_settings, [
        _relay("brand", sinks.ports["brand"], from_domains=["example.org"]),
        _relay("one", sinks.ports["one"], password="", username=""),
        _relay("two", sinks.ports["two"]),
    ])  # fmt: skip
    conn = connect()
    assert (
        conn.send("bounces+x@example.org", "ops@example.org", b"Subject: t\r\n\r\nhi\r\n").state
        == "sent"
    )
    conn.close()
    assert sinks.received("one").total() == 1  # the first general relay in service
    take_out("one", "test")
    conn = connect()
    conn.send("bounces+x@example.org", "ops@example.org", b"Subject: t\r\n\r\nhi\r\n")
    conn.close()
    assert sinks.received("two").total() == 1
    checks = {c["name"]: c["status"] for c in run_doctor()["checks"]}
    assert checks["relay brand"] == checks["relay one"] == checks["relay two"] == "ok"


def test_a_send_pauses_only_when_no_relay_is_usable_and_resumes_when_one_answers(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    from newsletter.devtools.sink import free_port

    ports = {"a": free_port(), "b": free_port()}  # nothing listens there yet
    _use(sqlite_settings, [_relay("a", ports["a"]), _relay("b", ports["b"])],
         auto_resume_limit_seconds=60)  # fmt: skip
    ids = seed(40)
    handler = SinkHandler(directory=tmp_path / "sink-b")
    started: list[Any] = []

    def bring_b_back() -> None:
        import time

        time.sleep(1.5)
        ctrl, _ = start_sink(handler, port=ports["b"])
        started.append(ctrl)

    threading.Thread(target=bring_b_back, daemon=True).start()
    try:
        assert drive_inline(ids["send"], max_wait=30) == "finished"
    finally:
        for c in started:
            c.stop()
    got = Counter(r for _f, rs, _d in handler.messages for r in rs)
    assert len(got) == 40 and max(got.values()) == 1
    with session_scope() as s:
        actions = [a.action for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert actions.count("notify.relay_down") == 2  # both taken out …
    assert "notify.auto_paused" in actions and "notify.auto_resumed" in actions  # … then paused
    assert "notify.relay_up" in actions
    assert "a" in down_relays(fresh=True) and "b" not in down_relays(fresh=True)
    assert {r for _e, _s, r in _deliveries(ids["send"])} == {"b"}
