"""Every named statement of ``delivery.queries`` is valid SQL for the migrated schema:
PostgreSQL plans it (EXPLAIN) with parameters of the right types."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from newsletter.core.config import Settings
from newsletter.core.db import engine
from newsletter.delivery import queries

NOW = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)


def _plan(sql: str, params: object) -> str:
    with engine().connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN " + sql, params).all()  # type: ignore[arg-type]
    return "\n".join(r[0] for r in rows)


def test_mark_sending_is_planned_with_its_fence(pg_settings: Settings) -> None:
    p = queries.packed
    plan = _plan(queries.MARK_SENDING,
                 (NOW, p([1, 2]), p(["<a@x>", "<b@x>"]), p(["default"] * 2), "w:1", NOW, 7))  # fmt: skip
    assert "Update on delivery" in plan
    assert "lease_until" in plan and "claimed_by" in plan  # the fence is in the plan


def test_mark_sent_is_planned(pg_settings: Settings) -> None:
    p = queries.packed
    plan = _plan(
        queries.MARK_SENT, (p([1]), p([NOW]), p([250]), p(["2.0.0 ok"]), p(["default"]), "w:1")
    )
    assert "Update on delivery" in plan
    assert "claimed_by" in plan  # fenced: a row taken over by another worker is left alone


def test_the_issue_plan_lock_is_planned(pg_settings: Settings) -> None:
    with engine().connect() as conn:
        rows = conn.execute(text("EXPLAIN " + queries.ISSUE_PLAN_LOCK), {"i": 47}).all()
    assert rows and "Result" in rows[0][0]


def test_the_claim_idle_timeout_is_accepted(pg_settings: Settings) -> None:
    """A setting cannot be planned: it is run, in a transaction rolled back."""
    with engine().connect() as conn:
        conn.execute(text(queries.CLAIM_IDLE_TIMEOUT.format(seconds=30)))
        shown = conn.scalar(text("SHOW idle_in_transaction_session_timeout"))
        conn.rollback()
    assert shown == "30s"


def test_the_synchronous_commit_settings_are_accepted(pg_settings: Settings) -> None:
    """Settings cannot be planned: they are run, in a transaction rolled back."""
    with engine().connect() as conn:
        conn.execute(text(queries.SYNC_COMMIT_OFF))
        off = conn.scalar(text("SHOW synchronous_commit"))
        conn.execute(text(queries.SYNC_COMMIT_RESET))
        reset = conn.scalar(text("SHOW synchronous_commit"))
        conn.rollback()
    assert (off, reset) == ("off", "on")


def test_packed_columns_unpack_to_the_values_they_carried(pg_settings: Settings) -> None:
    """A packed column comes back element for element: NULLs, an empty text (as a space),
    the separators themselves (as spaces), times to the microsecond, CJK text."""
    at = dt.datetime(2026, 1, 5, 9, 30, 1, 123456, tzinfo=dt.UTC)
    texts = ["2.0.0 ok", None, "", "a\x1fb\x1ec", "已接收 queued as 4Xk"]
    sql = "SELECT " + ", ".join(["string_to_array(%s, E'\\x1f', E'\\x1e')::{}[]"] * 3)
    with engine().connect() as conn:
        got = conn.exec_driver_sql(
            sql.format("text", "timestamptz", "bigint"),
            (queries.packed(texts), queries.packed([at, None]), queries.packed([1, 2**40, None])),
        ).one()
    assert got[0] == ["2.0.0 ok", None, " ", "a b c", "已接收 queued as 4Xk"]
    assert got[1] == [at, None]
    assert got[2] == [1, 2**40, None]
    assert queries.packed([""]) == " "  # alone it would unpack to no element at all


def test_every_named_statement_is_covered() -> None:
    """A statement added to ``queries`` without a check here fails."""
    named = {n for n in queries.__all__ if n.isupper()}
    covered = {
        "MARK_SENDING",
        "MARK_SENT",
        "ISSUE_PLAN_LOCK",
        "CLAIM_IDLE_TIMEOUT",
        "SYNC_COMMIT_OFF",
        "SYNC_COMMIT_RESET",
    }
    assert named == covered, named ^ covered
