"""The thin slice, end to end, twice: embedded mode, and the production stack.

Production: PostgreSQL, Redis and a real Celery worker process, with a real
SMTP server (aiosmtpd) receiving the mail.
"""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import select

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.devtools.demo import APPLE_MPP_UA, BROWSER_UA, run_demo
from newsletter.models import Send
from newsletter.reports.stats import send_stats
from newsletter.web.app import create_app
from tests.conftest import EXAMPLES
from tests.e2e.procs import env_for, sample_email_send, start_worker, stop, wait_for

pytestmark = pytest.mark.e2e  # real worker and beat processes

PIXEL = re.compile(r'https?://[^"\s]+?/o/([^"\s/]+)\.gif')


def test_embedded_demo_runs_the_whole_slice(tmp_path: Path) -> None:
    console = Console(record=True, width=120)
    stats = run_demo(
        tmp_path / "demo", EXAMPLES / "issue-sample.md", EXAMPLES / "subscribers.csv", console
    )
    received = list((tmp_path / "demo" / "sink").glob("*.eml"))
    assert stats["delivered"] == len(received) >= 40
    assert stats["opens_unique"] > 0 and stats["opens_total_machine"] > 0
    assert stats["clicks_unique"] > 0 and stats["clicks_machine"] > 0
    out = console.export_text()
    assert "已送达" in out and "render" in out  # Chinese first (both languages: 已送达 / delivered)
    assert (tmp_path / "demo" / "render" / "email.html").exists()


def test_production_stack_with_celery_worker(pg_settings, redis_url, smtp_sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    prefix = f"nltest:{uuid.uuid4().hex[:8]}:"
    cfg = pg_settings.model_copy(
        update={
            "broker_url": redis_url,
            "redis_url": redis_url,
            "redis_prefix": prefix,
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "batch_size": 10,
            "send_parallelism": 2,
        }
    )
    reset_settings(cfg)
    worker = start_worker(cfg, env_for(cfg, tmp_path))
    try:
        send_id, summary = sample_email_send(tmp_path)
        from tests.e2e.procs import enqueue

        enqueue(cfg, "newsletter.start_send", send_id)

        def finished() -> bool:
            with session_scope() as s:
                return s.scalar(select(Send.state).where(Send.id == send_id)) == "finished"

        wait_for(finished)
        rcpts = [r for _f, rs, _d in sink.messages for r in rs]
        assert len(rcpts) == len(set(rcpts)) == summary.new  # exactly once each

        # Readers open the mail: the web app verifies the token and XADDs to Redis.
        client = TestClient(create_app())
        for n, (_f, _r, data) in enumerate(sink.messages[:10]):
            msg = email.message_from_bytes(data, policy=email.policy.default)
            body = msg.get_body(("html",))
            assert body is not None
            m = PIXEL.search(body.get_content())
            assert m, "open pixel missing"
            ua = APPLE_MPP_UA if n % 2 else BROWSER_UA
            assert client.get(f"/o/{m.group(1)}.gif", headers={"User-Agent": ua}).status_code == 200
        # The worker's ingester consumes the stream into events and rollups.
        enqueue(cfg, "newsletter.ingest_events")

        def counted() -> dict | None:  # type: ignore[type-arg]
            with session_scope() as s:
                st = send_stats(s, send_id)
            return st if st["opens_unique"] == 5 and st["opens_total_machine"] == 5 else None

        st = wait_for(counted, timeout=60)
        assert st["delivered"] == summary.new
    finally:
        stop(worker)
