"""A real `newsletter worker` lowers its CPU priority to ``worker_nice`` before its pool
forks, so every sending process yields the CPU to the web, PostgreSQL and a local relay
on a shared host; it never raises a priority it was started with."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.procs import env_for, stop, wait_for

pytestmark = pytest.mark.e2e


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, nice, command line) of a process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[16]), cmd


def _tree(root: int) -> dict[int, int]:
    """pid -> nice of ``root`` and every descendant."""
    stats = {int(p): _stat(int(p)) for p in os.listdir("/proc") if p.isdigit()}
    out: dict[int, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        st = stats.get(pid)
        if st is None:
            continue
        out[pid] = st[1]
        todo += [c for c, s in stats.items() if s is not None and s[0] == pid]
    return out


def _grown(tree: dict[int, int], n: int) -> dict[int, int] | None:
    return tree if len(tree) >= n else None


def _start(env: dict[str, str], log: Path, prefix: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "newsletter.cli.main", "worker", "--concurrency", "2"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_worker_processes_run_at_worker_nice(pg_settings, redis_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = pg_settings.model_copy(
        update={
            "broker_url": redis_url,
            "redis_url": redis_url,
            "redis_prefix": f"nltest:{uuid.uuid4().hex[:8]}:",
        }
    )
    base = env_for(cfg, tmp_path)
    base.pop("NEWSLETTER_WORKER_NICE", None)
    cases = {
        # (environment, started under `nice -n`) -> the niceness every process must have
        "default": ({}, None, 5),
        "set": ({"NEWSLETTER_WORKER_NICE": "9"}, None, 9),
        "off": ({"NEWSLETTER_WORKER_NICE": "0"}, None, 0),
        "already nicer": ({}, 12, 12),
    }
    procs = {}
    for name, (extra, started_nice, _want) in cases.items():
        prefix = ["nice", "-n", str(started_nice)] if started_nice is not None else []
        procs[name] = _start({**base, **extra}, tmp_path / f"{name}.log", prefix)
    try:
        for name, (_extra, _started, want) in cases.items():
            proc = procs[name]
            # the parent (the CLI runs the Celery worker in its own process) and 2 children
            tree = wait_for(lambda p=proc: _grown(_tree(p.pid), 3), timeout=60)
            assert set(tree.values()) == {want}, (name, tree)
    finally:
        stop(*procs.values())


def test_a_bad_worker_nice_is_refused(tmp_path: Path) -> None:
    """Out of range: one clear line naming the setting, no traceback."""
    env = {
        **os.environ,
        "NEWSLETTER_WORKER_NICE": "40",
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "newsletter.cli.main", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "worker_nice" in text.lower() and "Traceback" not in text, text
