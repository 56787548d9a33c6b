"""Starting real Celery worker and beat processes for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from newsletter.core.config import Settings
from newsletter.devtools.proctree import descendants
from tests import waiting
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
        # the sealed versions the test approved: one store for every process, as deployed
        "NEWSLETTER_BLOB_DIR": str(cfg.blob_dir or cfg.var_dir / "blobs"),
        "NEWSLETTER_BATCH_SIZE": str(cfg.batch_size),
        "NEWSLETTER_SEND_PARALLELISM": str(cfg.send_parallelism),
        "NEWSLETTER_TICK_SECONDS": str(cfg.tick_seconds),
        "NEWSLETTER_LEASE_SECONDS": str(cfg.lease_seconds),
        "NEWSLETTER_STALL_SECONDS": str(cfg.stall_seconds),
    }
    env.update(extra)
    return env


def start_worker(cfg: Settings, env: dict[str, str], concurrency: int = 2) -> subprocess.Popen[Any]:
    """A worker in its own process group, so a test can kill -9 it with its children."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "-Q",
            f"{cfg.redis_prefix}default",
            "-c",
            str(concurrency),
            "--loglevel=info",
            "-n",
            f"test-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=_log(env, "worker"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill9(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL a process and every child in its group (a worker dying mid-send)."""
    import signal

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def start_beat(env: dict[str, str], tmp_path: Path) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "beat",
            "--loglevel=warning",
            "-s",
            str(tmp_path / "beat-schedule"),
        ],
        cwd=ROOT,
        env=env,
        stdout=_log(env, "beat"),
        stderr=subprocess.STDOUT,
    )


def _log(env: dict[str, str], name: str) -> Any:
    """Process output goes to a file under the test's var dir (kept for diagnosis)."""
    d = Path(env["NEWSLETTER_VAR_DIR"])
    d.mkdir(parents=True, exist_ok=True)
    return (d / f"{name}-{uuid.uuid4().hex[:6]}.log").open("wb")


def stop(*procs: subprocess.Popen[Any]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 90.0,
    every: float = 0.5,
    what: str = "the condition",
) -> T:
    return waiting.wait_for(predicate, timeout=timeout, every=every, what=what)


class Supervised:
    """Restart a process when it exits, as docker's `restart: unless-stopped` or systemd would."""

    def __init__(self, factory: Callable[[], subprocess.Popen[Any]]) -> None:
        self.factory = factory
        self.proc = factory()
        self.restarts = 0

    def check(self) -> None:
        if self.proc.poll() is not None:
            self.proc = self.factory()
            self.restarts += 1

    def stop(self) -> None:
        stop(self.proc)


def enqueue(cfg: Settings, task: str, *args: Any) -> None:
    """Send a task message to the broker in ``cfg`` on a fresh connection (no cached pools)."""
    from workers.celery_app import app

    with app.connection_for_write(cfg.broker_url) as conn:
        app.send_task(task, args, connection=conn, queue=f"{cfg.redis_prefix}default")


def stack_settings(pg_settings: Settings, broker: str, port: int, **kw: Any) -> Settings:
    """The production stack's settings for a fault test, made current: PostgreSQL, Redis at
    ``broker`` (a fresh key prefix), the SMTP sink on ``port``, short ticks and leases."""
    from newsletter.core.config import reset_settings

    cfg = pg_settings.model_copy(update={
        "broker_url": broker, "redis_url": broker,
        "redis_prefix": f"nltest:{uuid.uuid4().hex[:8]}:", "smtp_host": "127.0.0.1",
        "smtp_port": port, "tick_seconds": 1, "batch_size": 20, "send_parallelism": 2,
        "lease_seconds": 4, "stall_seconds": 3, **kw,
    })  # fmt: skip
    reset_settings(cfg)
    return cfg


def send_state(send_id: int) -> str | None:
    from sqlalchemy import select

    from newsletter.core.db import session_scope
    from newsletter.models import Send

    with session_scope() as s:
        return s.scalar(select(Send.state).where(Send.id == send_id))


def kill_worker_mid_send(
    cfg: Settings,
    env: dict[str, str],
    tmp_path: Path,
    sink: Any,
    send_id: int,
    start: Callable[[], object],
    after_kill: Callable[[], object] | None = None,
    kill_when: Callable[[], bool] | None = None,
) -> None:
    """Worker and beat up, ``start()`` the send, kill -9 the worker once ``kill_when()`` holds
    (by default: 60 messages have reached the sink), ``after_kill()``, then a replacement
    worker runs the send to its end."""
    worker: subprocess.Popen[Any] | None = start_worker(cfg, env)
    beat = start_beat(env, tmp_path)
    replacement = None
    try:
        start()
        wait_for(kill_when or (lambda: len(sink.messages) >= 60), timeout=60, every=0.05)
        assert worker is not None
        kill9(worker)
        worker = None
        if after_kill is not None:
            after_kill()
        replacement = start_worker(cfg, env)
        wait_for(lambda: send_state(send_id) == "finished", timeout=120)
    finally:
        stop(beat, *(p for p in (worker, replacement) if p is not None))


def sample_email_send(tmp_path: Path) -> tuple[int, Any]:
    """The sample issue (approved), examples/subscribers.csv on 周报订阅 and a draft email
    send of it to that list: (send id, the import's summary)."""
    from newsletter.audience.importer import import_file
    from newsletter.audience.service import get_list
    from newsletter.core.db import session_scope
    from newsletter.issues.review import approve
    from newsletter.issues.store import create_issue
    from newsletter.models import Send
    from tests.conftest import EXAMPLES

    with session_scope() as s:
        issue, _ = create_issue(s, EXAMPLES / "issue-sample.md")
        approve(s, issue, "editor@example.org")  # approval seals what the workers send
        issue_id, pub_id = issue.id, issue.publication_id
    summary = import_file(
        EXAMPLES / "subscribers.csv", "周报订阅", report_path=tmp_path / "errors.csv"
    )
    with session_scope() as s:
        send = Send(
            publication_id=pub_id,
            issue_id=issue_id,
            list_id=get_list(s, "周报订阅").id,
            channel="email",
            state="draft",
        )
        s.add(send)
        s.flush()
        return send.id, summary


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, read from ``/proc`` (a worker and its pool's children)."""
    return descendants(pid)


def relay_connections(pid: int, port: int) -> dict[int, set[int]]:
    """The established TCP connections from the process tree of ``pid`` to 127.0.0.1:``port``:
    {process id: the connections' local ports}. Read from ``/proc/net/tcp`` and each
    process's file descriptors, so a test can tell which worker process a relay's client is."""
    by_inode: dict[str, int] = {}
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == "01" and int(remote.split(":")[1], 16) == port:  # 01: ESTABLISHED
                by_inode[inode] = int(local.split(":")[1], 16)
    out: dict[int, set[int]] = {}
    for p in process_tree(pid):
        try:
            fds = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{p}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in by_inode:
                out.setdefault(p, set()).add(by_inode[link[8:-1]])
    return out
