"""A weekly send fired by a real beat process and delivered by a real worker.

PostgreSQL, Redis, Celery beat and worker processes, and an SMTP server.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from newsletter.audience.importer import import_file
from newsletter.audience.service import get_list
from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.issues.review import approve
from newsletter.issues.store import create_issue
from newsletter.models import Send, utcnow
from newsletter.reports.stats import send_stats
from newsletter.schedule.slots import schedule_send
from tests.conftest import EXAMPLES
from tests.e2e.procs import env_for, start_beat, start_worker, stop, wait_for

pytestmark = pytest.mark.e2e  # real worker and beat processes


def test_scheduled_send_fires_once_and_reaches_everyone(
    pg_settings, redis_url, smtp_sink, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    cfg = pg_settings.model_copy(
        update={
            "broker_url": redis_url,
            "redis_url": redis_url,
            "redis_prefix": f"nltest:{uuid.uuid4().hex[:8]}:",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "tick_seconds": 1,
            "batch_size": 10,
            "send_parallelism": 2,
        }
    )
    reset_settings(cfg)
    summary = import_file(EXAMPLES / "subscribers.csv", "周报订阅", report_path=tmp_path / "e.csv")
    with session_scope() as s:
        issue, _ = create_issue(s, EXAMPLES / "issue-sample.md")
        approve(s, issue, "editor@example.org")
        send = schedule_send(
            s,
            issue,
            list_id=get_list(s, "周报订阅").id,
            at=utcnow() + dt.timedelta(seconds=4),
            actor="ops@example.org",
        )
        send_id = send.id
    env = env_for(cfg, tmp_path)
    worker = start_worker(cfg, env)
    (tmp_path / "b1").mkdir()
    (tmp_path / "b2").mkdir()
    beats = [start_beat(env, tmp_path / "b1"), start_beat(env, tmp_path / "b2")]  # two by mistake
    try:

        def finished() -> bool:
            with session_scope() as s:
                return s.scalar(select(Send.state).where(Send.id == send_id)) == "finished"

        wait_for(finished, timeout=120)
    finally:
        stop(worker, *beats)
    rcpts = [r for _f, rs, _d in sink.messages for r in rs]
    assert len(rcpts) == len(set(rcpts)) == summary.new
    with session_scope() as s:
        st = send_stats(s, send_id)
        send = s.get(Send, send_id)
        assert send is not None and send.started_at is not None and send.scheduled_at is not None
        assert send.started_at >= send.scheduled_at
    assert st["delivered"] == summary.new and st["state"] == "finished"
