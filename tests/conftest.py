"""Shared fixtures: real PostgreSQL, Redis and SMTP; never mocks.

Each test run gets its own PostgreSQL database (random name, dropped at the end)
and its own Redis key prefix, so ``pytest -n 2`` workers and repeated runs never
see each other's rows.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from newsletter.core import caches, clock
from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import dispose, upgrade
from newsletter.delivery.compiled import clear_cache
from newsletter.devtools.sink import SinkHandler, start_sink

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PG_ADMIN = os.environ.get("NEWSLETTER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("NEWSLETTER_TEST_REDIS", "redis://127.0.0.1:6379/0")


#: threads the embedded mode starts for a request: an import job (job-12), an in-process
#: send (send-7); not the process's long-lived helpers (send-stop-watcher)
_BACKGROUND = re.compile(r"(job|send)-\d+")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A background thread a test started ends with the test, before its fixtures tear
    down: left running, it wrote to the next test's database (or held a transaction that
    blocked its TRUNCATE)."""
    import sys
    import threading

    before = set(threading.enumerate())
    yield
    for t in threading.enumerate():
        if t in before or not _BACKGROUND.fullmatch(t.name):
            continue
        t.join(60)
        if t.is_alive():
            print(f"{item.nodeid}: thread {t.name} still running after 60 s", file=sys.stderr)


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Every test starts with the wall clock and no process-wide memories of another test
    (relay rotation, lint results, replay guards, token caches...)."""
    clock.set_clock(None)
    caches.reset_all()
    yield
    clock.set_clock(None)
    caches.reset_all()


if os.environ.get("NEWSLETTER_CLOCK_OFFSET"):
    # `make test-future`: a receiving server that verifies DKIM (dkimpy, here) is another
    # party whose clock must agree with the product's, or every t= is "in the future".
    import types

    import dkim

    dkim.time = types.SimpleNamespace(
        **{  # type: ignore[attr-defined]
            **{n: getattr(dkim.time, n) for n in dir(dkim.time) if not n.startswith("_")},
            "time": clock.timestamp,
        }
    )


# Messages are read in both languages (Chinese first) whatever this machine's locale is; a
# test of the locale itself sets its own.
os.environ["NEWSLETTER_LANG"] = "both"
_KEPT = ("NEWSLETTER_CLOCK_OFFSET", "NEWSLETTER_LANG")


def clean_env() -> dict[str, str]:
    """This process's environment without its NEWSLETTER_* settings, for a child that gets
    its own; the clock offset of ``make test-future`` and the reader's language are kept,
    so parent and child share one notion of "now" and speak alike."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("NEWSLETTER_") or k in _KEPT}  # fmt: skip


class MovableClock:
    """The product's one clock, started at the real time and moved only by the test."""

    def __init__(self) -> None:
        self.at = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


@pytest.fixture
def moved_clock() -> Iterator[MovableClock]:
    """Simulated time for the product: ``moved_clock.advance(s)`` instead of sleeping."""
    c = MovableClock()
    clock.set_clock(c)
    yield c
    clock.set_clock(None)


def _pg_exec(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session (per xdist worker)."""
    name = f"nltest_{uuid.uuid4().hex[:10]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    dispose()
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate(url: str) -> None:
    from sqlalchemy import text

    import newsletter.models.console
    import newsletter.models.tracking
    import newsletter.models.wechat  # noqa: F401  (every table must be truncated)
    from newsletter.core.db import engine
    from newsletter.models import Base

    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    for attempt in range(2):
        try:
            with engine(url).begin() as conn:
                # a connection an earlier test left inside a transaction would block the
                # TRUNCATE for as long as it lives: wait 15 s, then say who it was and end it
                conn.execute(text("SET LOCAL lock_timeout = '15s'"))
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        except Exception as exc:
            if attempt or "lock timeout" not in str(exc):
                raise
            _end_blockers(url)


def _end_blockers(url: str) -> None:
    """End the backends of the test database that sit inside a transaction, and name them
    (their last statement) on stderr, so a leak shows without stalling the suite."""
    import sys

    from sqlalchemy import text

    from newsletter.core.db import engine

    with engine(url).begin() as conn:
        rows = conn.execute(
            text(
                "SELECT pid, state, left(query, 200) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND state LIKE 'idle in transaction%'"
            )
        ).all()
        for pid, state, query in rows:
            sys.stderr.write(f"test database: ended backend {pid} ({state}): {query}\n")
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "var_dir": tmp_path / "var",
        "database_url": "",
        "broker_url": "",
        "redis_url": "",
        "secret_key": "test-secret-" + uuid.uuid4().hex,
        "base_url": "https://news.example.org",
        "smtp_host": "maildir",
        "redis_prefix": f"nltest:{uuid.uuid4().hex[:8]}:",
        # Two-factor login is required per role only where a test asks for it
        # (tests/console/test_two_factor.py); the install default is admin and ops.
        "two_factor_roles": "",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Iterator[Settings]:
    """Embedded mode: a fresh SQLite file, in-process tasks."""
    s = make_settings(tmp_path)
    reset_settings(s)
    dispose()
    clear_cache()
    upgrade()
    yield s
    reset_settings(None)
    dispose()
    clear_cache()


@pytest.fixture
def pg_settings(tmp_path: Path, pg_database: str) -> Iterator[Settings]:
    """Production database (PostgreSQL), emptied before each test."""
    _truncate(pg_database)
    s = make_settings(tmp_path, database_url=pg_database)
    reset_settings(s)
    clear_cache()
    yield s
    reset_settings(None)
    clear_cache()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Run the test on both backends."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_settings")
    else:
        yield request.getfixturevalue("pg_settings")


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[tuple[int, SinkHandler]]:
    """A real SMTP server (aiosmtpd) in this process."""
    ctrl, handler = start_sink(SinkHandler(directory=tmp_path / "sink"))
    yield ctrl.port, handler
    ctrl.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    out = subprocess.run(["redis-cli", "-u", REDIS_URL, "ping"], capture_output=True, text=True)
    assert out.stdout.strip() == "PONG", "Redis must be running (scripts/ensure-services.sh)"
    return REDIS_URL


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many tests ran, and how many of them with real processes or a browser."""
    passed = terminalreporter.stats.get("passed", [])
    ran = [
        r
        for key in ("passed", "failed")
        for r in terminalreporter.stats.get(key, [])
        if getattr(r, "when", "call") == "call"
    ]
    e2e = sum(1 for r in ran if "e2e" in getattr(r, "keywords", {}))
    terminalreporter.write_line(
        f"ran {len(ran)} tests ({len(passed)} passed): {e2e} e2e (real workers or a browser), "
        f"{len(ran) - e2e} others"
    )
