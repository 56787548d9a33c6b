"""The base layer's named SQL (``newsletter/core/queries.py``) runs where it is meant to:
the ping on both databases, the pragmas on SQLite, where each takes effect."""

from __future__ import annotations

from sqlalchemy import text

from newsletter.core import queries
from newsletter.core.config import Settings
from newsletter.core.db import engine


def test_the_ping_answers_on_both_databases(any_db: Settings) -> None:
    with engine(any_db.db_url).connect() as conn:
        assert conn.scalar(text(queries.PING)) == 1


def test_every_sqlite_connection_gets_the_pragmas(sqlite_settings: Settings) -> None:
    with engine(sqlite_settings.db_url).connect() as conn:
        got = {
            "journal_mode": conn.scalar(text("PRAGMA journal_mode")),
            "foreign_keys": conn.scalar(text("PRAGMA foreign_keys")),
            "busy_timeout": conn.scalar(text("PRAGMA busy_timeout")),
            "synchronous": conn.scalar(text("PRAGMA synchronous")),
        }
    assert got == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000,
                   "synchronous": 1}  # fmt: skip


def test_every_named_statement_is_covered() -> None:
    assert set(queries.__all__) == {"PING", "SQLITE_PRAGMAS"}
