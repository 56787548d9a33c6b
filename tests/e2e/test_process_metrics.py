"""Every process's /metrics, /healthz and /readyz on the production stack, scraped with
prometheus-client's own parser: a `newsletter worker` (prefork: its children's counters
are summed), beat and the ingester, during a real send into an SMTP sink; the figures
move with the send."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.models import Send
from tests.conftest import ROOT
from tests.e2e.procs import enqueue, env_for, sample_email_send, stop, wait_for

pytestmark = pytest.mark.e2e
TOKEN = "metrics-token-for-this-test-0123456789"


def _scrape(port: int) -> dict[str, Any]:
    r = httpx.get(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert r.status_code == 200, r.text[:200]
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def _total(families: dict[str, Any], name: str, **labels: str) -> float:
    fam = families.get(name)
    if fam is None:
        return 0.0
    return sum(
        s.value
        for s in fam.samples
        if s.name.endswith(("_total", "_count")) or s.name == name
        if all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_worker_beat_and_ingester_serve_metrics_and_health(
    pg_settings, redis_url, smtp_sink, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    base = _free_block(3)
    cfg = pg_settings.model_copy(
        update={
            "broker_url": redis_url,
            "redis_url": redis_url,
            "redis_prefix": f"nltest:{uuid.uuid4().hex[:8]}:",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "batch_size": 10,
            "send_parallelism": 2,
        }
    )
    reset_settings(cfg)
    env = env_for(cfg, tmp_path, NEWSLETTER_METRICS_PORT=str(base), NEWSLETTER_METRICS_TOKEN=TOKEN)
    log = (tmp_path / "procs.log").open("w")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "newsletter.cli.main", "worker", "--concurrency", "2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "newsletter.cli.main", "beat", "--loglevel", "warning"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "newsletter.cli.main", "ingest"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        for offset in range(3):
            wait_for(lambda o=offset: _up(base + o), timeout=60)
            assert httpx.get(f"http://127.0.0.1:{base + offset}/healthz").status_code == 200
            assert httpx.get(f"http://127.0.0.1:{base + offset}/readyz").status_code == 200
            denied = httpx.get(f"http://127.0.0.1:{base + offset}/metrics")
            assert denied.status_code == 401
        before = _scrape(base)
        assert _total(before, "newsletter_deliveries") == 0

        send_id, summary = sample_email_send(tmp_path)
        enqueue(cfg, "newsletter.start_send", send_id)

        def finished() -> bool:
            with session_scope() as s:
                return s.scalar(select(Send.state).where(Send.id == send_id)) == "finished"

        wait_for(finished)
        after = _scrape(base)
        sent = _total(after, "newsletter_deliveries", outcome="sent")
        assert sent == summary.new == len({r for _f, rs, _d in sink.messages for r in rs})
        assert _total(after, "newsletter_deliveries", relay="default") == sent
        assert _total(after, "newsletter_claim_lag_seconds") >= 1  # claims were observed
        beat = _scrape(base + 1)
        ingester = _scrape(base + 2)
        assert "newsletter_events_ingested" in ingester and "newsletter_deliveries" in beat
    finally:
        stop(*procs)
        log.close()


def _free_block(n: int) -> int:
    """The first of ``n`` consecutive ports that can be bound now, below the kernel's
    ephemeral range: ports handed out by ``free_port`` lie inside it, where the one after
    may be any process's outgoing connection by the time a server binds it (a beat then
    moved to another port, as it should, and the test waited on the old one)."""
    import random
    import socket

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        base = random.randrange(10_000, low - n)
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
