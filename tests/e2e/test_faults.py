"""Fault tests on the production stack: kill -9 a worker, restart Redis, mid-send.

Real PostgreSQL, Redis, Celery worker and beat processes and an SMTP server.
Nobody may be lost; duplicates at the sink may only come from deliveries that
were inside an SMTP transaction at the crash, and those are counted (at_risk).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.devtools.sink import free_port
from newsletter.models import Delivery
from tests.e2e.procs import (
    Supervised,
    enqueue,
    env_for,
    kill_worker_mid_send,
    send_state,
    stack_settings,
    start_beat,
    start_worker,
    wait_for,
)
from tests.factories import seed

pytestmark = pytest.mark.e2e  # real worker and beat processes

N = 240


def _answers(port: int) -> bool:
    out = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
    return out.stdout.strip() == "PONG"


def _slow(envelope) -> None:  # type: ignore[no-untyped-def]
    time.sleep(0.01)  # ~100 msg/s: slow enough to crash in the middle


def _start(cfg, send_id: int) -> None:  # type: ignore[no-untyped-def]
    enqueue(cfg, "newsletter.start_send", send_id)


def _check(sink, send_id: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    rcpts = [r for _f, rs, _d in sink.messages for r in rs]
    assert set(rcpts) == {f"reader{i}@example.com" for i in range(N)}  # nobody lost
    dups = len(rcpts) - len(set(rcpts))
    with session_scope() as s:
        at_risk = s.scalar(select(func.count()).where(Delivery.at_risk)) or 0
        states = dict(
            s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )
    assert states == {"sent": N}
    # At most one marked group (send_group_size messages) per worker process in flight.
    cfg = get_settings()
    assert dups <= at_risk <= cfg.send_parallelism * cfg.send_group_size
    return dups, at_risk


def test_kill_9_worker_mid_send_loses_nobody(pg_settings, redis_url, smtp_sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    sink.on_data = _slow
    cfg = stack_settings(pg_settings, redis_url, port)
    ids = seed(N)

    def really_dead() -> None:
        time.sleep(0.5)  # a DATA already on the wire may still land at the sink
        got = len(sink.messages)
        time.sleep(1)
        assert len(sink.messages) == got  # really dead: nothing more arrives
        assert got < N  # killed in the middle

    kill_worker_mid_send(cfg, env_for(cfg, tmp_path), tmp_path, sink, ids["send"],
                         lambda: _start(cfg, ids["send"]), really_dead)  # fmt: skip
    _check(sink, ids["send"])


def test_redis_restart_mid_send_loses_nobody(pg_settings, smtp_sink, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    sink.on_data = _slow
    rport = free_port()
    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    cmd = [
        redis_bin,
        "--port",
        str(rport),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    redis = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    broker = f"redis://127.0.0.1:{rport}/0"
    wait_for(lambda: _answers(rport), timeout=20, every=0.05, what=f"redis on port {rport}")
    cfg = stack_settings(pg_settings, broker, port)
    ids = seed(N)
    env = env_for(cfg, tmp_path)
    # Under a supervisor: kombu may give up on a lost broker and exit; it is restarted.
    worker = Supervised(lambda: start_worker(cfg, env))
    beat = Supervised(lambda: start_beat(env, tmp_path))
    try:
        _start(cfg, ids["send"])
        wait_for(lambda: len(sink.messages) >= 60, timeout=60, every=0.05)
        redis.kill()
        redis.wait()
        time.sleep(2)  # queued task messages are gone with it (no persistence)
        redis = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)

        def done() -> bool:
            worker.check()
            beat.check()
            return send_state(ids["send"]) == "finished"

        wait_for(done, timeout=150)
    finally:
        worker.stop()
        beat.stop()
        redis.terminate()
        redis.wait()
    _check(sink, ids["send"])
