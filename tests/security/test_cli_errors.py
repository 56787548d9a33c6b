"""F7: every command-line error is one line (English / 中文), a non-zero exit, no
traceback, and the database as it was.  Each case runs the real ``newsletter``
entry point in a new process against PostgreSQL (or a broken database URL)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select, text

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.models import Base, Issue
from tests.conftest import PG_ADMIN, clean_env
from tests.factories import seed
from tests.security.conftest import issue_text

BIN = Path(sys.executable).parent / "newsletter"
CJK = range(0x4E00, 0x9FFF)


@dataclass
class Case:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    #: makes the files the command needs; gets the temp dir, returns replacements for {x}
    setup: Callable[[Path], dict[str, str]] | None = None
    db_url: str | None = None  # None: the test's database


def _write(path: Path, data: bytes | str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return str(path)


def _bad_date(d: Path) -> dict[str, str]:
    body = issue_text("正文").replace("number: 7", "number: 7\ndate: 2026-02-30")
    return {"f": _write(d / "bad-date.md", body)}


def _nul_issue(d: Path) -> dict[str, str]:
    return {"f": _write(d / "nul.md", issue_text("正文\x00后文"))}


def _nul_csv(d: Path) -> dict[str, str]:
    rows = "email,name\n" + "".join(f"r{i}@example.com,读者{i}\n" for i in range(20))
    return {"f": _write(d / "nul.csv", rows + "bad@example.com,a\x00b\n")}


def _good_issue(d: Path) -> dict[str, str]:
    return {"f": _write(d / "ok.md", issue_text("正文。")), "file": _write(d / "a-file", "x")}


def _good_csv(d: Path) -> dict[str, str]:
    rows = "email,name\n" + "".join(f"r{i}@example.com,读者{i}\n" for i in range(9))
    return {"f": _write(d / "ok.csv", rows)}


def _dir(d: Path) -> dict[str, str]:
    (d / "folder").mkdir()
    return {"f": str(d / "folder")}


CASES = [
    Case("bad front-matter date", ["issue", "add", "{f}"], setup=_bad_date),
    Case("NUL byte in an issue", ["issue", "add", "{f}"], setup=_nul_issue),
    Case("NUL byte in a CSV", ["subscribers", "import", "{f}", "--list", "L"], setup=_nul_csv),
    Case("id too large", ["issue", "approve", "99999999999"]),
    Case("id too large for a send", ["send", "status", "99999999999999999999"]),
    Case("issue approve abc", ["issue", "approve", "abc"]),
    Case("--out is a file", ["issue", "render", "{f}", "--out", "{file}"], setup=_good_issue),
    Case(
        "--out cannot be written",
        ["issue", "render", "{f}", "--out", "/proc/nl-out"],
        setup=_good_issue,
    ),
    Case("export --out cannot be written", ["subscribers", "export", "--out", "/proc/x.csv"]),
    Case("export --out is a folder", ["subscribers", "export", "--out", "/tmp"]),
    Case(
        "a directory given to import", ["subscribers", "import", "{f}", "--list", "L"], setup=_dir
    ),
    Case(
        "unwritable --report",
        ["subscribers", "import", "{f}", "--list", "L", "--report", "/proc/report.csv"],
        setup=_good_csv,
    ),
    Case(
        "database unreachable",
        ["issue", "approve", "1"],
        db_url="postgresql+psycopg://postgres@127.0.0.1:1/newsletter",
    ),
    Case("database missing", ["issue", "approve", "1"], db_url="MISSING"),
    Case("database not migrated", ["issue", "approve", "1"], db_url="EMPTY"),
    Case("bad database URL", ["issue", "approve", "1"], db_url="nonsense://what"),
    Case("bad database URL (driver)", ["lists", "list"], db_url="postgresql+nodriver://x/y"),
    Case(
        "broker down on send start",
        ["send", "start", "{send}"],
        env={"NEWSLETTER_BROKER_URL": "redis://127.0.0.1:1/0"},
    ),
    Case(
        "Redis down on ingest",
        ["ingest", "--once"],
        env={"NEWSLETTER_REDIS_URL": "redis://127.0.0.1:1/0"},
    ),
]


@pytest.fixture
def empty_db() -> Iterator[str]:
    name = f"nlempty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _snapshot() -> dict[str, int]:
    import newsletter.models.console
    import newsletter.models.tracking
    import newsletter.models.wechat  # noqa: F401  (every table)

    with session_scope() as s:
        return {
            t.name: int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_bad_input_is_one_clear_line(
    case: Case, pg_app: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    ids = seed(2)
    with session_scope() as s:  # an issue the commands could wrongly touch
        s.execute(text("UPDATE issue SET status = 'draft'"))
    subs = {"send": str(ids["send"])}
    if case.setup is not None:
        subs.update(case.setup(tmp_path))
    args = [a.format(**subs) for a in case.args]
    db_url = case.db_url or pg_app.database_url
    if db_url == "MISSING":
        db_url = pg_app.database_url.rsplit("/", 1)[0] + "/nl_no_such_db_" + uuid.uuid4().hex[:6]
    elif db_url == "EMPTY":
        db_url = request.getfixturevalue("empty_db")
    env = clean_env()
    env.update(
        NEWSLETTER_CONFIG=str(tmp_path / "absent.toml"),
        NEWSLETTER_VAR_DIR=str(tmp_path / "var"),
        NEWSLETTER_DATABASE_URL=db_url,
        NEWSLETTER_SECRET_KEY="cli-errors-0123456789abcdef-0123456789",
        NEWSLETTER_REDIS_PREFIX=pg_app.redis_prefix,
        COLUMNS="60",  # a narrow terminal must not wrap the line either
    )
    env.update(case.env)
    before = _snapshot()
    out = subprocess.run(
        [str(BIN), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    after = _snapshot()
    assert out.returncode != 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, out.stderr
    line = lines[0]
    assert any(ord(c) in CJK for c in line), line  # Chinese …
    assert any(c.isascii() and c.isalpha() for c in line), line  # … and English
    assert after == before, "the database changed"
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"
    with session_scope() as s:
        assert s.scalar(select(Issue.status)) == "draft"


def test_debug_flag_shows_the_traceback(pg_app: Settings, tmp_path: Path) -> None:
    env = clean_env()
    env.update(
        NEWSLETTER_CONFIG=str(tmp_path / "absent.toml"),
        NEWSLETTER_VAR_DIR=str(tmp_path / "var"),
        NEWSLETTER_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/x",
    )
    out = subprocess.run(
        [str(BIN), "--debug", "issue", "approve", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "Traceback" in out.stderr
