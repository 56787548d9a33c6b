"""Send safety with real Celery worker and beat processes, PostgreSQL, Redis and an
SMTP sink that counts per recipient: the weekly slot plus a manual start reach each
reader once; pause from the command line stops new transactions at once; a worker
killed with -9 leaves duplicates that carry their first copy's Message-ID."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from newsletter.core.db import session_scope
from newsletter.models import Delivery, Issue, utcnow
from newsletter.schedule.slots import schedule_send
from tests.conftest import ROOT
from tests.e2e.procs import (
    env_for,
    kill_worker_mid_send,
    send_state,
    stack_settings,
    start_beat,
    start_worker,
    stop,
    wait_for,
)
from tests.factories import seed

pytestmark = pytest.mark.e2e  # real worker and beat processes

N = 200


def _sending(send_id: int) -> int:
    with session_scope() as s:
        return int(
            s.scalar(
                select(func.count()).where(Delivery.send_id == send_id, Delivery.state == "sending")
            )
            or 0
        )


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter.cli.main", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_slot_and_manual_start_reach_each_reader_once(
    pg_settings, redis_url, smtp_sink, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    cfg = stack_settings(pg_settings, redis_url, port)
    ids = seed(N)
    with session_scope() as s:
        issue = s.get(Issue, ids["issue"])
        scheduled = schedule_send(s, issue, list_id=ids["list"],
                                  at=utcnow() + dt.timedelta(seconds=3), actor="ops").id  # fmt: skip
    env = env_for(cfg, tmp_path)
    worker = start_worker(cfg, env)
    beat = start_beat(env, tmp_path)
    try:
        r = _cli(env, "send", "start", str(ids["send"]))  # ops also starts the copy by hand
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: send_state(ids["send"]) == "finished" and send_state(scheduled) == "finished",
                 timeout=180)  # fmt: skip
    finally:
        stop(worker, beat)
    counts = Counter(r for _f, rs, _d in sink.messages for r in rs)
    assert len(counts) == N and max(counts.values()) == 1
    r = _cli(env, "send", "status", str(scheduled), "--json")
    assert '"already_received"' in r.stdout


@pytest.mark.parametrize(("group", "action"), [(1, "pause"), (25, "pause"), (25, "cancel")])
def test_pause_from_the_cli_stops_new_transactions(
    pg_settings, redis_url, smtp_sink, tmp_path, group: int, action: str
) -> None:  # type: ignore[no-untyped-def]
    """After `send pause` (or `cancel`) returns, a worker process finishes at most the
    message already on the wire, whatever the group size: the sending loop reads the stop
    flag before every message. The rest of a marked group is given back unsent (not at
    risk); a cancelled send's unsent rows are skipped as cancelled."""
    port, sink = smtp_sink
    stamps: list[float] = []
    paused = threading.Event()

    def slow(envelope) -> None:  # type: ignore[no-untyped-def]
        stamps.append(time.monotonic())
        if len(stamps) >= 30:  # the relay stalls until the pause has returned, so the send
            paused.wait(60)  # cannot finish while the pause command is starting
        else:
            time.sleep(0.02)

    sink.on_data = slow
    cfg = stack_settings(pg_settings, redis_url, port, send_group_size=group)
    ids = seed(N)
    env = env_for(cfg, tmp_path, NEWSLETTER_SEND_GROUP_SIZE=str(group))
    processes = 2
    worker = start_worker(cfg, env, concurrency=processes)
    try:
        assert _cli(env, "send", "start", str(ids["send"])).returncode == 0
        wait_for(lambda: len(stamps) >= 30, timeout=60, every=0.02)
        try:
            r = _cli(env, "send", action, str(ids["send"]))
            returned = time.monotonic()
        finally:
            paused.set()
        assert r.returncode == 0, r.stderr
        # each process finishes the message on the wire, then nothing is `sending`
        wait_for(
            lambda: _sending(ids["send"]) == 0,
            timeout=30,
            every=0.05,
            what="the messages on the wire to finish after the pause",
        )
    finally:
        stop(worker)
    late = [t for t in stamps if t > returned]
    assert len(late) <= processes, (len(late), group, action)  # the one in DATA, per process
    assert all(t - returned < 2.0 for t in late)
    assert send_state(ids["send"]) == ("paused" if action == "pause" else "cancelled")
    assert len(stamps) < N
    with session_scope() as s:
        states = dict(
            s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )
        at_risk = s.scalar(select(func.count()).where(Delivery.at_risk)) or 0
    assert at_risk == 0  # what was given back had not been sent
    assert states.get("sent", 0) == len(stamps)
    if action == "cancel":  # nothing left to go
        assert set(states) <= {"sent", "skipped"}, states


def test_kill_9_duplicates_keep_their_message_id(
    pg_settings, redis_url, smtp_sink, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The sink holds the 61st message's DATA until the worker is dead: that message is in
    doubt (on the wire, no reply), so the replacement must send it again. The duplicate is
    certain, not a matter of timing, and it must carry the first copy's Message-ID."""
    port, sink = smtp_sink
    gate = threading.Event()

    def hold_after_60(envelope: object) -> None:
        if len(sink.messages) >= 60 and not gate.is_set():
            gate.wait(60)

    sink.on_data = hold_after_60
    cfg = stack_settings(pg_settings, redis_url, port)
    ids = seed(N)
    env = env_for(cfg, tmp_path)

    def start() -> None:
        assert _cli(env, "send", "start", str(ids["send"])).returncode == 0

    kill_worker_mid_send(cfg, env, tmp_path, sink, ids["send"], start, after_kill=gate.set)
    first: dict[str, str] = {}
    copies: Counter[str] = Counter()
    for _f, rcpts, data in sink.messages:
        mid = str(email.message_from_bytes(data, policy=email.policy.default)["Message-ID"])
        for r in rcpts:
            copies[r] += 1
            assert first.setdefault(r, mid) == mid  # a re-sent copy has the same Message-ID
    assert len(first) == N
    twice = [r for r, n in copies.items() if n > 1]
    assert twice, "the held message was in doubt and must have been sent again"
    status = json.loads(_cli(env, "send", "status", str(ids["send"]), "--json").stdout)
    # every reader who got two copies was counted at risk (the count can be larger: a
    # message in doubt that never reached the sink is at risk and arrived once)
    assert status["at_risk"] >= len(twice), (status["at_risk"], len(twice))
