"""Send safety with real Celery worker and beat processes, PostgreSQL, Redis and an
SMTP sink that counts per recipient: the weekly slot plus a manual start reach each
reader once; pause and cancel, from the command line, the API or the console, at 2 and 8
worker processes, stop new transactions at once; a worker
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.core.db import session_scope
from newsletter.devtools.sink import SinkHandler, start_sink
from newsletter.models import Delivery, Issue, utcnow
from newsletter.schedule.slots import schedule_send
from newsletter.web.app import create_app
from newsletter.web.console.services import create_token, create_user
from tests.conftest import ROOT
from tests.console.helpers import PASSWORDS, login
from tests.e2e.procs import (
    env_for,
    kill_worker_mid_send,
    relay_connections,
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


@dataclass
class _PeerSink(SinkHandler):
    """The SMTP sink, also counting the messages of each client connection (by the
    client's port), so that a test can say which worker process sent what."""

    peers: Counter[int] = field(default_factory=Counter)
    #: (when the message's DATA ended, the client's port), in order
    stamps: list[tuple[float, int]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.peers[session.peer[1]] += 1
        self.stamps.append((time.monotonic(), session.peer[1]))
        return await super().handle_DATA(server, session, envelope)


@contextmanager
def _stop_command(
    via: str, env: dict[str, str], send_id: int, action: str
) -> Iterator[Callable[[], None]]:
    """What ops does to stop a send, ready to run (the user, token and login made first):
    ``send pause|cancel`` on the command line, ``POST /api/sends/{id}/{action}`` with a
    personal API token, or the console's form POST with a logged-in session and its CSRF
    token. Each returns once the command has returned to the person."""
    target = "paused" if action == "pause" else "cancelled"
    if via == "cli":

        def cli() -> None:
            r = _cli(env, "send", action, str(send_id))
            assert r.returncode == 0, r.stdout + r.stderr

        yield cli
        return
    user = create_user("test", "ops", PASSWORDS["ops"], "ops")
    with TestClient(create_app(), base_url="https://testserver", follow_redirects=False) as c:
        if via == "api":
            token = create_token("test", user["id"], "e2e stop")["token"]

            def api() -> None:
                r = c.post(
                    f"/api/sends/{send_id}/{action}",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 200, r.text
                assert r.json()["state"] == target, r.json()

            yield api
        else:
            csrf = login(c, "ops")

            def console() -> None:
                r = c.post(f"/console/sends/{send_id}/{action}", data={"csrf": csrf})
                assert r.status_code == 303, r.text[:300]
                assert r.headers["location"].startswith(f"/console/sends/{send_id}")

            yield console


#: 8 worker processes take a while on a small host: they run in the slow suite
#: (`make test-partition`, after `make test` in CI)
_AT_8 = pytest.mark.slow
STOPS = [
    pytest.param("cli", "pause", 1, 2, id="cli-pause-k1-2proc"),
    pytest.param("cli", "pause", 25, 2, id="cli-pause-2proc"),
    pytest.param("cli", "cancel", 25, 2, id="cli-cancel-2proc"),
    pytest.param("api", "pause", 25, 2, id="api-pause-2proc"),
    pytest.param("api", "cancel", 25, 2, id="api-cancel-2proc"),
    pytest.param("console", "pause", 25, 2, id="console-pause-2proc"),
    pytest.param("console", "cancel", 25, 2, id="console-cancel-2proc"),
    *(
        pytest.param(via, action, 25, 8, id=f"{via}-{action}-8proc", marks=_AT_8)
        for via in ("cli", "api", "console")
        for action in ("pause", "cancel")
    ),
]


@pytest.mark.parametrize(("via", "action", "group", "processes"), STOPS)
def test_pause_and_cancel_stop_new_transactions(
    pg_settings, redis_url, tmp_path, via: str, action: str, group: int, processes: int
) -> None:  # type: ignore[no-untyped-def]
    """After a pause or cancel returns (command line, API or console), each worker process
    finishes at most the message already on the wire, whatever the group size: the sending
    loop reads the stop flag before every message. The sink holds the relay once every
    process has a message through, until the command has returned, so at that moment
    each process is inside its group with most of it still to go. The rest of a marked
    group is given back unsent (not at risk); a cancelled send's unsent rows are skipped
    as cancelled."""
    held = threading.Event()
    released = threading.Event()
    sink = _PeerSink()
    stamps = sink.stamps

    def hold(envelope) -> None:  # type: ignore[no-untyped-def]
        if len(stamps) >= 30 and len(sink.peers) >= processes:
            held.set()  # the relay stalls until the command has returned, so the send
            released.wait(60)  # cannot finish while the command is starting
        else:
            time.sleep(0.02)

    ctrl, _ = start_sink(sink)
    n = max(N, 50 * processes)  # a batch of 50 per process: a whole group of k to go
    cfg = stack_settings(pg_settings, redis_url, ctrl.port, send_group_size=group,
                         batch_size=50, send_parallelism=processes)  # fmt: skip
    ids = seed(n)
    env = env_for(cfg, tmp_path, NEWSLETTER_SEND_GROUP_SIZE=str(group))
    worker = start_worker(cfg, env, concurrency=processes)
    try:
        with _stop_command(via, env, ids["send"], action) as stop_send:
            sink.on_data = hold
            assert _cli(env, "send", "start", str(ids["send"])).returncode == 0
            wait_for(held.is_set, timeout=120, every=0.02,
                     what=f"{processes} connections each with a message through")  # fmt: skip
            clients = relay_connections(worker.pid, ctrl.port)
            try:
                stop_send()
                returned = time.monotonic()
            finally:
                released.set()
        # each process finishes the message on the wire, then nothing is `sending`
        wait_for(
            lambda: _sending(ids["send"]) == 0,
            timeout=30,
            every=0.05,
            what="the messages on the wire to finish after the stop",
        )
    finally:
        stop(worker)
        ctrl.stop()
    process_of = {port: pid for pid, ports in clients.items() for port in ports}
    sending = {process_of.get(port) for port in sink.peers}
    assert len(sending - {None}) == processes, (clients, sink.peers)  # all were sending
    late = [(t, port) for t, port in stamps if t > returned]
    print(f"{via} {action}, {processes} processes: {len(late)} late, last after "
          f"{max((t - returned for t, _ in late), default=0):.2f} s")  # fmt: skip
    per_process = Counter(process_of.get(port) for _t, port in late)
    assert None not in per_process, late  # no connection opened after the stop
    # the one in DATA, per process
    assert max(per_process.values(), default=0) <= 1, (per_process, via, action)
    assert len(late) <= processes, (len(late), via, action, processes)
    assert all(t - returned < 2.0 for t, _port in late), [t - returned for t, _ in late]
    assert send_state(ids["send"]) == ("paused" if action == "pause" else "cancelled")
    assert len(stamps) < n
    copies = Counter(r for _f, rs, _d in sink.messages for r in rs)
    assert max(copies.values()) == 1  # no reader twice
    with session_scope() as s:
        states = dict(
            s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )
        at_risk = s.scalar(select(func.count()).where(Delivery.at_risk)) or 0
        replies = set(s.scalars(select(Delivery.last_reply).where(Delivery.state == "skipped")))
    assert at_risk == 0  # what was given back had not been sent
    assert states.get("sent", 0) == len(stamps) == len(copies)
    if action == "cancel":  # nothing left to go
        assert states == {"sent": len(stamps), "skipped": n - len(stamps)}, states
        assert replies == {"cancelled / 已取消"}, replies
    else:
        assert states.get("sent", 0) + states.get("queued", 0) == n, states


def test_kill_9_duplicates_keep_their_message_id(
    pg_settings, redis_url, smtp_sink, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The sink holds the 61st message's DATA until the worker is dead: that message is in
    doubt (on the wire, no reply), so the replacement must send it again. The duplicate is
    certain, not a matter of timing, and it must carry the first copy's Message-ID."""
    port, sink = smtp_sink
    gate = threading.Event()
    held = threading.Event()

    def hold_after_60(envelope: object) -> None:
        if len(sink.messages) >= 60 and not gate.is_set():
            held.set()  # the kill waits for this: a message is certainly on the wire
            gate.wait(60)

    sink.on_data = hold_after_60
    cfg = stack_settings(pg_settings, redis_url, port)
    ids = seed(N)
    env = env_for(cfg, tmp_path)

    def start() -> None:
        assert _cli(env, "send", "start", str(ids["send"])).returncode == 0

    kill_worker_mid_send(
        cfg, env, tmp_path, sink, ids["send"], start, after_kill=gate.set, kill_when=held.is_set
    )
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
