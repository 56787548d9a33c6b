"""Every statement of the rollup rebuild (``tracking.queries``) is planned by PostgreSQL
against the migrated schema, and the rebuild runs them all."""

from __future__ import annotations

from sqlalchemy import text

from newsletter.core.config import Settings
from newsletter.core.db import engine
from newsletter.tracking import queries


def test_every_rebuild_statement_is_planned(pg_settings: Settings) -> None:
    statements = queries.rebuild_statements("postgresql")
    names = [name for name, _sql in statements]
    assert len(names) == len(set(names)) == 10, names
    with engine().connect() as conn:
        for name, sql in statements:
            plan = conn.execute(text("EXPLAIN " + sql), {"s": 1}).all()
            assert plan, name


def test_sqlite_gets_its_own_fragments() -> None:
    pg = dict(queries.rebuild_statements("postgresql"))["hourly rollups"]
    lite = dict(queries.rebuild_statements("sqlite"))["hourly rollups"]
    assert "date_trunc" in pg and "strftime" in lite
