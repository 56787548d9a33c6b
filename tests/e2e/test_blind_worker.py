"""A worker refuses to work blind (issue 30): started while the database is unreachable it
takes no task, says so in one line and consumes once the database is back; a database
gone for longer than a lease stops it taking tasks again, until it returns.

A real Celery worker, Redis, PostgreSQL reached through a TCP forwarder the test opens
and closes (closed: the port refuses), and an SMTP sink counting per recipient.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from sqlalchemy.engine import make_url

from tests.e2e.procs import enqueue, env_for, send_state, stack_settings, start_worker, stop
from tests.factories import seed
from tests.forward import Forward, free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e  # a real worker process

N = 40
STOPPED = "停止接收任务"
RESUMED = "继续接收任务"


def _log(var: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in var.glob("worker-*.log"))


def _queued(client: redis.Redis, queue: str) -> int:
    return sum(int(client.llen(k)) for k in client.keys(f"{queue}*"))


def test_worker_without_database_takes_no_task_until_it_is_back(
    pg_settings, redis_url, smtp_sink, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    cfg = stack_settings(pg_settings, redis_url, port)
    ids = seed(N)
    url = make_url(cfg.database_url)
    forward = Forward(free_port(), (url.host or "127.0.0.1", url.port or 5432))
    through = url.set(port=forward.port).render_as_string(hide_password=False)
    env = env_for(cfg, tmp_path, NEWSLETTER_DATABASE_URL=through)
    logs = Path(env["NEWSLETTER_VAR_DIR"])  # the worker writes its output there
    queue = f"{cfg.redis_prefix}default"
    client = redis.Redis.from_url(redis_url)
    worker = start_worker(cfg, env)
    try:
        wait_for(lambda: STOPPED in _log(logs), timeout=60, what="the worker's line")
        assert "启动时数据库不可达" in _log(logs)
        enqueue(cfg, "newsletter.start_send", ids["send"])
        assert _queued(client, queue) == 1
        # A window, measured: the worker probes every second and must leave the task alone.
        time.sleep(3)
        assert _queued(client, queue) == 1, "a worker without its database took a task"
        assert send_state(ids["send"]) == "draft"
        assert _log(logs).count(STOPPED) == 1  # one line, not one per probe
        assert "Traceback" not in _log(logs)

        forward.open()
        wait_for(lambda: RESUMED in _log(logs), timeout=30, what="the worker to resume")
        wait_for(lambda: send_state(ids["send"]) == "finished", timeout=60,
                 what="the send to finish")  # fmt: skip
        got = Counter(r for _f, rs, _d in sink.messages for r in rs)
        assert got == Counter({f"reader{i}@example.com": 1 for i in range(N)})

        # Lost for longer than a lease (4 s here): it stops taking tasks again, then resumes.
        cut = time.monotonic()
        forward.close()
        wait_for(lambda: _log(logs).count(STOPPED) == 2, timeout=30,
                 what="the worker to stop after a lease")  # fmt: skip
        # counted from the last probe that reached it, up to one probe (a quarter lease)
        # before the cut
        assert time.monotonic() - cut >= cfg.lease_seconds * 0.75
        assert "超过租约" in _log(logs)
        forward.open()
        wait_for(lambda: _log(logs).count(RESUMED) == 2, timeout=30,
                 what="the worker to resume again")  # fmt: skip
    finally:
        stop(worker)
        forward.close()
        client.close()
