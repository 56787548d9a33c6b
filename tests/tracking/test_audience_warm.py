"""The worker that finishes a send keeps its statistics' denominators at once, so the
first person to open the figures reads them instead of waiting for a GROUP BY over every
delivery; a later bounce drops them and the next read rebuilds the same counts."""

from __future__ import annotations

from sqlalchemy import func, select, update

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.run import drive_inline, start
from newsletter.models import Delivery
from newsletter.models.tracking import SendAudience
from newsletter.reports.stats import send_stats
from tests.factories import seed


def _kept(send_id: int) -> dict[tuple[str, str, str, str, bool], int]:
    with session_scope() as s:
        return {
            (v, g, st, r, a): n
            for v, g, st, r, a, n in s.execute(
                select(SendAudience.variant, SendAudience.domain_group, SendAudience.state,
                       SendAudience.relay, SendAudience.at_risk, SendAudience.n)
                .where(SendAudience.send_id == send_id)
            )
        }  # fmt: skip


def _ended_send(settings, smtp_sink, readers: int) -> int:  # type: ignore[no-untyped-def]
    """A send to ``readers`` readers, driven to its end through the sink, with the counts
    its end kept dropped (each test keeps them again its own way)."""
    port, _sink = smtp_sink
    reset_settings(settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    ids = seed(readers)
    start(ids["send"])
    assert drive_inline(ids["send"]) == "finished"
    with session_scope() as s:
        s.query(SendAudience).delete()
    return ids["send"]


def test_finishing_a_send_keeps_its_denominators(any_db, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, _sink = smtp_sink
    reset_settings(any_db.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    ids = seed(6)
    start(ids["send"])
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(SendAudience)) == 0
    assert drive_inline(ids["send"]) == "finished"
    kept = _kept(ids["send"])
    assert sum(n for (_v, _g, st, _r, _a), n in kept.items() if st == "sent") == 6
    assert {k[0] for k in kept} == {"zh-Hans", "zh-Hant"}
    # the figures read from what was kept agree with a fresh computation
    with session_scope() as s:
        before = send_stats(s, ids["send"])
    with session_scope() as s:
        s.query(SendAudience).delete()
    with session_scope() as s:
        assert send_stats(s, ids["send"]) == before
    assert _kept(ids["send"]) == kept


def test_relays_and_at_risk_come_from_what_was_kept(any_db, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    """An ended send's per-relay counts and at-risk count are read from the kept rows (no
    scan of its deliveries per read) and agree with the deliveries themselves."""
    ids = {"send": _ended_send(any_db, smtp_sink, 6)}
    with session_scope() as s:
        rows = s.scalars(
            select(Delivery).where(Delivery.send_id == ids["send"]).order_by(Delivery.id)
        ).all()
        for i, d in enumerate(rows):
            d.relay = "r1" if i % 3 else "r2"
            d.at_risk = i < 2
    with session_scope() as s:
        first = send_stats(s, ids["send"])
    assert first["relays"] == {"r1": 4, "r2": 2}
    assert first["at_risk"] == 2
    assert sum(n for k, n in _kept(ids["send"]).items() if k[4]) == 2
    # the deliveries change behind the cache's back: the figures stay those kept …
    with session_scope() as s:
        s.execute(update(Delivery).where(Delivery.send_id == ids["send"]).values(at_risk=True))
    with session_scope() as s:
        assert send_stats(s, ids["send"])["at_risk"] == 2
    # … until the cache is dropped (as a bounce does), when they are counted again
    with session_scope() as s:
        s.query(SendAudience).delete()
    with session_scope() as s:
        again = send_stats(s, ids["send"])
    assert again["at_risk"] == 6
    assert again["relays"] == {"r1": 4, "r2": 2}


def test_an_ended_send_with_a_message_still_on_the_wire_is_not_kept(any_db, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    """A cancelled send can still have a row ``sending`` (its outcome comes later): its
    counts are read but not kept, so the outcome shows when it lands."""
    ids = {"send": _ended_send(any_db, smtp_sink, 3)}
    with session_scope() as s:
        first = s.scalars(select(Delivery.id).where(Delivery.send_id == ids["send"])).first()
        s.execute(update(Delivery).where(Delivery.id == first).values(state="sending"))
    with session_scope() as s:
        assert send_stats(s, ids["send"])["deliveries_sending"] == 1
    assert _kept(ids["send"]) == {}
    with session_scope() as s:
        s.execute(update(Delivery).where(Delivery.id == first).values(state="sent"))
    with session_scope() as s:
        assert send_stats(s, ids["send"])["deliveries_sent"] == 3
    assert sum(_kept(ids["send"]).values()) == 3


def test_two_first_readers_race_and_both_get_the_figures(any_db, smtp_sink, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The worker's warm-up and a person's first page compute an ended send's counts at
    the same time: whoever keeps them second keeps nothing, and still reads the figures."""
    from newsletter.tracking import audience

    ids = {"send": _ended_send(any_db, smtp_sink, 3)}
    counted = audience._count
    raced: list[int] = []

    def count_while_another_keeps(session, send_id):  # type: ignore[no-untyped-def]
        rows = counted(session, send_id)
        if not raced:  # the other reader (itself counting unhindered) commits first
            raced.append(send_id)
            audience.warm(send_id)
        return rows

    monkeypatch.setattr(audience, "_count", count_while_another_keeps)
    with session_scope() as s:
        assert send_stats(s, ids["send"])["deliveries_sent"] == 3
    assert raced and sum(_kept(ids["send"]).values()) == 3
