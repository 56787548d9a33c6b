"""Every named statement of ``audience.queries`` (the subscriber import's SQL) is valid for
the migrated schema: PostgreSQL plans each statement it can plan (EXPLAIN, parameters of
the right types, the staging table in place), runs the others (SET, CREATE, COPY) in a
transaction it rolls back, and SQLite compiles the SQLite variants."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, text

from newsletter.audience import queries
from newsletter.core.config import Settings
from newsletter.core.db import engine

NOW = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
PARAMS: dict[str, Any] = {"list": 1, "now": NOW, "source": "import:test", "n": 3, "welcome": True}

#: Planned by EXPLAIN on PostgreSQL.
PLANNED_PG = {
    "ACTIVATE_UNCONFIRMED",
    "ALL_SUBSCRIBER_EMAILS",
    "ALL_SUPPRESSION_EMAILS",
    "BLOCKED_PG",
    "BLOCKED_PORTABLE_PG",
    "CLEAR_STAGE",
    "COUNT_SUBSCRIBERS",
    "COUNT_SUPPRESSIONS",
    "DROP_NEW_FROM_STAGE",
    "DROP_STAGE_ROWS",
    "INSERT_NEW_PG",
    "INSERT_NEW_PORTABLE_PG",
    "JOIN_LIST",
    "MATCH_KNOWN_PG",
    "NEXT_SUBSCRIBER_IDS",
    "SUBSCRIBER_SEQUENCE",
    "UPDATE_EXISTING_PG",
}
#: Not plannable (utility statements): run on PostgreSQL inside a rolled-back transaction.
RUN_PG = {
    "COPY_STAGE_PG",
    "COPY_SUBSCRIBERS_PG",
    "COPY_SUBSCRIPTIONS_PG",
    "CREATE_STAGE_PG",
    "HASH_AND_MERGE_JOINS_OFF",
    "HASH_AND_MERGE_JOINS_ON",
    "SYNCHRONOUS_COMMIT_OFF",
}
#: SQLite's own statements, compiled by SQLite (EXPLAIN).
PLANNED_SQLITE = {
    "BLOCKED_PORTABLE_SQLITE",
    "CREATE_STAGE_SQLITE",
    "FILL_STAGE_SQLITE",
    "INSERT_NEW_PORTABLE_SQLITE",
    "UPDATE_EXISTING_SQLITE",
}


def _statement(name: str, sequence: str = "") -> Any:
    sql = getattr(queries, name)
    if name == "NEXT_SUBSCRIBER_IDS":
        sql = sql.format(sequence=sequence)
    stmt = text(sql)
    if name == "DROP_STAGE_ROWS":
        stmt = stmt.bindparams(bindparam("rows", expanding=True))
    return stmt


def _params(sql: Any, **extra: Any) -> dict[str, Any]:
    wanted = set(sql.compile().params)
    return {k: v for k, v in {**PARAMS, **extra}.items() if k in wanted}


def test_every_statement_is_planned_by_postgresql(pg_settings: Settings) -> None:
    with engine().connect() as conn:
        conn.execute(text(queries.CREATE_STAGE_PG))
        sequence = str(conn.scalar(text(queries.SUBSCRIBER_SEQUENCE)))
        for name in sorted(PLANNED_PG):
            stmt = _statement(name, sequence)
            explain = text("EXPLAIN " + stmt.text)
            if name == "DROP_STAGE_ROWS":
                explain = explain.bindparams(bindparam("rows", expanding=True))
            plan = conn.execute(explain, _params(stmt, rows=[1, 2])).all()
            assert plan, name
        conn.rollback()


def test_the_utility_statements_run_on_postgresql(pg_settings: Settings) -> None:
    with engine().connect() as conn:
        conn.execute(text(queries.CREATE_STAGE_PG))
        for name in ("SYNCHRONOUS_COMMIT_OFF",):
            conn.execute(text(getattr(queries, name)))
        for setting in (*queries.HASH_AND_MERGE_JOINS_OFF, *queries.HASH_AND_MERGE_JOINS_ON):
            conn.execute(text(setting))
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cur:
            for copy in (
                queries.COPY_STAGE_PG,
                queries.COPY_SUBSCRIBERS_PG,
                queries.COPY_SUBSCRIPTIONS_PG,
            ):
                with cur.copy(copy) as cp:
                    cp.write("")  # no rows: the columns are checked, nothing is stored
        conn.rollback()


def test_the_sqlite_statements_are_planned_by_sqlite(sqlite_settings: Settings) -> None:
    with engine().connect() as conn:
        conn.execute(text(queries.CREATE_STAGE_SQLITE))
        for name in sorted(PLANNED_SQLITE - {"CREATE_STAGE_SQLITE"}):
            stmt = _statement(name)
            program = conn.execute(
                text("EXPLAIN " + stmt.text),
                _params(stmt, r=1, e="a@example.org", h="sha256:x", v="zh-Hans", a="{}"),
            ).all()
            assert program, name
        conn.rollback()


def test_every_named_statement_is_covered() -> None:
    """A statement added to ``queries`` without a check here fails."""
    named = set(queries.__all__)
    covered = PLANNED_PG | RUN_PG | PLANNED_SQLITE
    assert named == covered, named ^ covered
    assert not (PLANNED_PG & RUN_PG) and not (PLANNED_PG & PLANNED_SQLITE)
