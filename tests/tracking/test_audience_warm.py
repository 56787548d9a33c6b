"""The worker that finishes a send keeps its statistics' denominators at once, so the
first person to open the figures reads them instead of waiting for a GROUP BY over every
delivery; a later bounce drops them and the next read rebuilds the same counts."""

from __future__ import annotations

from sqlalchemy import func, select

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.run import drive_inline, start
from newsletter.models.tracking import SendAudience
from newsletter.reports.stats import send_stats
from tests.factories import seed


def _kept(send_id: int) -> dict[tuple[str, str, str], int]:
    with session_scope() as s:
        return {
            (v, g, st): n
            for v, g, st, n in s.execute(
                select(SendAudience.variant, SendAudience.domain_group, SendAudience.state,
                       SendAudience.n).where(SendAudience.send_id == send_id)
            )
        }  # fmt: skip


def test_finishing_a_send_keeps_its_denominators(any_db, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, _sink = smtp_sink
    reset_settings(any_db.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    ids = seed(6)
    start(ids["send"])
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(SendAudience)) == 0
    assert drive_inline(ids["send"]) == "finished"
    kept = _kept(ids["send"])
    assert sum(n for (_v, _g, st), n in kept.items() if st == "sent") == 6
    assert {v for v, _g, _st in kept} == {"zh-Hans", "zh-Hant"}
    # the figures read from what was kept agree with a fresh computation
    with session_scope() as s:
        before = send_stats(s, ids["send"])
    with session_scope() as s:
        s.query(SendAudience).delete()
    with session_scope() as s:
        assert send_stats(s, ids["send"]) == before
    assert _kept(ids["send"]) == kept
