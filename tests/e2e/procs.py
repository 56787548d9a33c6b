"""Starting real Celery worker and beat processes for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from newsletter.config import Settings
from tests.conftest import ROOT

T = TypeVar("T")


def env_for(cfg: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": cfg.database_url,
        "NEWSLETTER_BROKER_URL": cfg.broker_url,
        "NEWSLETTER_REDIS_URL": cfg.redis_url,
        "NEWSLETTER_REDIS_PREFIX": cfg.redis_prefix,
        "NEWSLETTER_SMTP_HOST": cfg.smtp_host,
        "NEWSLETTER_SMTP_PORT": str(cfg.smtp_port),
        "NEWSLETTER_SECRET_KEY": cfg.secret_key.get_secret_value(),
        "NEWSLETTER_BASE_URL": cfg.base_url,
        "NEWSLETTER_VAR_DIR": str(tmp_path / "proc-var"),
        "NEWSLETTER_BATCH_SIZE": str(cfg.batch_size),
        "NEWSLETTER_SEND_PARALLELISM": str(cfg.send_parallelism),
        "NEWSLETTER_TICK_SECONDS": str(cfg.tick_seconds),
        "NEWSLETTER_LEASE_SECONDS": str(cfg.lease_seconds),
    }
    env.update(extra)
    return env


def start_worker(cfg: Settings, env: dict[str, str], concurrency: int = 2) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
         "-Q", f"{cfg.redis_prefix}default", "-c", str(concurrency), "--loglevel=warning",
         "-n", f"test-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def start_beat(env: dict[str, str], tmp_path: Path) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat", "--loglevel=warning",
         "-s", str(tmp_path / "beat-schedule")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def stop(*procs: subprocess.Popen[Any]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for(predicate: Callable[[], T | None], timeout: float = 90.0, every: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")
