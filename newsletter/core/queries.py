"""The base layer's hand-written SQL, named (the other packages keep theirs in their own
``queries`` module; ``tests/test_core_queries.py`` runs each)."""

from __future__ import annotations

__all__ = ["PING", "SQLITE_PRAGMAS"]

#: Whether a connection answers (health checks, the worker's start-up probe).
PING = "SELECT 1"

#: Set on every new SQLite connection (embedded mode): write-ahead log so readers never
#: block the writer, foreign keys enforced, a writer waits up to 30 s for another instead
#: of failing, and a commit reaches the disk at each checkpoint rather than each commit.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=NORMAL",
)
