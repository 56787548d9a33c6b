"""A batch finds its rows by its claim token through an index (migration 0027), not by
reading every delivery of every send since the install began."""

from __future__ import annotations

from sqlalchemy import text

from newsletter.core.config import Settings
from newsletter.core.db import session_scope


def test_the_claim_token_lookups_can_use_the_partial_index(pg_settings: Settings) -> None:
    with session_scope() as s:
        definition = s.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_delivery_claimed'")
        )
        s.execute(text("SET LOCAL enable_seqscan = off"))
        plans = [
            "\n".join(
                s.scalars(text("EXPLAIN " + q), {"t": "w:1"})  # the batch's own lookups
            )
            for q in (
                "SELECT id FROM delivery WHERE claimed_by = :t ORDER BY id",
                "UPDATE delivery SET lease_until = now() WHERE claimed_by = :t "
                "AND state IN ('queued', 'deferred', 'sending')",
            )
        ]
    assert definition is not None and "WHERE (claimed_by IS NOT NULL)" in definition
    for plan in plans:
        assert "ix_delivery_claimed" in plan, plan
