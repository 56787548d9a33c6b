"""Faster recovery (issue 19): short leases kept alive by a heartbeat thread, a dead
worker's rows back within one lease, and a dropped database connection that does not
end the batch chain (PostgreSQL, a real SMTP sink)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select, text, update

from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import engine, session_scope
from newsletter.delivery.batch import process_batch
from newsletter.delivery.lease import claim
from newsletter.delivery.run import drive_inline, start, step_resilient
from newsletter.devtools.sink import SinkHandler
from newsletter.models import Delivery, Send
from tests.factories import seed
from tests.waiting import wait_for


def _stack(pg_settings: Settings, port: int, **kw: object) -> Settings:
    cfg = pg_settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port, **kw})
    reset_settings(cfg)
    return cfg


def _rcpts(sink: SinkHandler) -> Counter[str]:
    return Counter(r for _f, rs, _d in sink.messages for r in rs)


def test_a_slow_transaction_keeps_its_lease_while_its_worker_lives(
    pg_settings: Settings, smtp_sink: tuple[int, SinkHandler]
) -> None:
    """Each message takes longer than the whole lease; a second worker keeps trying to
    claim. The heartbeat keeps the rows (the sending one included), so nobody gets a
    message twice and nothing is flagged at risk."""
    port, sink = smtp_sink
    # A lease of 3 s is renewed every second; each message takes 4 s. (Short enough to
    # be quick, long enough that a loaded CI machine still beats in time.)
    _stack(pg_settings, port, lease_seconds=3, batch_size=2)
    ids = seed(2)
    start(ids["send"])

    on_the_wire = threading.Event()

    def slow(_envelope: object) -> None:
        on_the_wire.set()
        time.sleep(4.0)

    sink.on_data = slow  # type: ignore[assignment]
    done = threading.Event()
    stolen: list[int] = []

    def rival() -> None:
        while not done.is_set():
            res = process_batch(ids["send"])
            stolen.append(res.claimed)
            time.sleep(0.2)

    first = threading.Thread(target=lambda: (process_batch(ids["send"]), done.set()))
    first.start()
    # the first worker has claimed the batch once its first message is on the wire
    assert on_the_wire.wait(30), "the first worker never sent"
    other = threading.Thread(target=rival)
    other.start()
    first.join(60)
    other.join(60)
    assert sum(stolen) == 0, stolen
    assert _rcpts(sink) == {f"reader{i}@example.com": 1 for i in range(2)}
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(Delivery.at_risk.is_(True))) == 0


def test_a_dead_workers_rows_come_back_within_one_lease(
    pg_settings: Settings, smtp_sink: tuple[int, SinkHandler]
) -> None:
    port, sink = smtp_sink
    _stack(pg_settings, port, lease_seconds=2)
    ids = seed(5)
    start(ids["send"])
    with session_scope() as s:  # a worker claims, starts one message, and dies
        _token, claimed = claim(s, ids["send"], 5, 2)
        s.execute(update(Delivery).where(Delivery.id == claimed[0]).values(state="sending"))
    t0 = time.monotonic()
    assert process_batch(ids["send"]).claimed == 0  # still leased
    while process_batch(ids["send"]).claimed == 0:
        assert time.monotonic() - t0 < 10, "rows did not come back"
        time.sleep(0.2)
    back = time.monotonic() - t0
    assert back <= 2 + 1.5, back
    drive_inline(ids["send"])
    assert _rcpts(sink) == {f"reader{i}@example.com": 1 for i in range(5)}
    with session_scope() as s:  # the message the dead worker had started is counted
        assert s.scalar(select(func.count()).where(Delivery.at_risk.is_(True))) == 1


@pytest.mark.slow
def test_a_dropped_database_connection_does_not_end_the_chain(
    pg_settings: Settings, smtp_sink: tuple[int, SinkHandler], caplog: pytest.LogCaptureFixture
) -> None:
    """Mid-send, every connection of this test's database is terminated by the server
    (what a PostgreSQL restart or failover does). The chain logs the real error, drops
    the dead connections, and goes on to the end: nobody lost, duplicates no more than
    the counted at-risk deliveries."""
    port, sink = smtp_sink
    _stack(pg_settings, port, lease_seconds=2, batch_size=5)
    ids = seed(40)
    start(ids["send"])
    sink.on_data = lambda _e: time.sleep(0.05)  # type: ignore[assignment,return-value]
    dbname = engine().url.database
    killed = threading.Event()

    def killer() -> None:
        wait_for(lambda: len(sink.messages) >= 8, timeout=60, every=0.02, what="8 messages sent")
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
        ) as c:
            for _ in range(30):  # again and again: some kills land inside a transaction
                c.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,),
                )
                time.sleep(0.03)
        killed.set()

    caplog.set_level(logging.WARNING)
    k = threading.Thread(target=killer)
    k.start()
    actions = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        nxt = step_resilient(ids["send"])
        actions.append(nxt.action)
        if nxt.action in ("done", "stopped"):
            break
        if nxt.action == "later":
            time.sleep(min(nxt.delay, 2.5))
    k.join(10)
    assert killed.is_set()
    with session_scope() as s:
        state = s.scalar(select(Send.state).where(Send.id == ids["send"]))
        at_risk = s.scalar(select(func.count()).where(Delivery.at_risk.is_(True)))
        s.execute(text("SELECT 1"))
    assert state == "finished", (state, actions)
    got = _rcpts(sink)
    assert set(got) == {f"reader{i}@example.com" for i in range(40)}  # nobody lost
    assert sum(got.values()) - 40 <= at_risk
    lost = [r.getMessage() for r in caplog.records if "database connection lost" in r.getMessage()]
    assert lost, [r.getMessage() for r in caplog.records]
    assert not any("PendingRollbackError" in m for m in lost)


def test_a_claim_whose_lease_ran_out_before_its_commit_sends_nothing(
    pg_settings: Settings, smtp_sink: tuple[int, SinkHandler]
) -> None:
    """The partition harness's finding: a claim held up inside its transaction reaches
    the database with a lease already over. Its rows are never marked (so never sent) by
    it, the heartbeat does not revive that lease, and another worker sends them."""
    import datetime as dt

    from newsletter.delivery import lease as eng
    from newsletter.delivery import queries

    port, sink = smtp_sink
    _stack(pg_settings, port, lease_seconds=3)
    ids = seed(4)
    start(ids["send"])
    with session_scope() as s:
        token, claimed = claim(s, ids["send"], 4, 3)
        past = eng.utcnow() - dt.timedelta(seconds=5)
        s.execute(update(Delivery).where(Delivery.id.in_(claimed)).values(lease_until=past))
    beat = eng.Heartbeat(token, 3)
    beat.every = 0.2
    beat.start()
    time.sleep(0.6)
    beat.stop()
    with session_scope() as s:
        leases = s.scalars(select(Delivery.lease_until).where(Delivery.id.in_(claimed))).all()
        assert all(lease is not None and lease < eng.utcnow() for lease in leases)  # not revived
        # its beats reached the database but renewed nothing: that is no renewal, so a
        # group under this claim still stops by its own clock (the partition suite's find)
        assert beat.renewed == float("-inf")
        now = eng.utcnow()
        took = s.connection().exec_driver_sql(
            queries.MARK_SENDING,
            (
                now + dt.timedelta(seconds=3),
                queries.packed([claimed[0]]),
                queries.packed(["<x@y>"]),
                queries.packed(["default"]),
                token,
                now,
                ids["send"],
            ),
        )
        assert took.rowcount == 0  # no mark under an expired lease
    drive_inline(ids["send"])  # another worker takes the rows over and sends them
    assert _rcpts(sink) == {f"reader{i}@example.com": 1 for i in range(4)}


def test_a_group_never_outlives_its_lease_when_the_heartbeat_cannot_renew(
    pg_settings: Settings, smtp_sink: tuple[int, SinkHandler], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that can no longer renew its lease (cut off from the database) stops
    its marked group by its own clock: no transaction begins after three quarters of
    the lease. The rows it left ``sending`` are taken over after the lease, flagged at
    risk, and sent once."""
    from newsletter.delivery import lease as eng

    port, sink = smtp_sink
    _stack(pg_settings, port, lease_seconds=2, batch_size=5, send_group_size=5)
    ids = seed(5)
    start(ids["send"])
    began: list[float] = []

    def slow(_envelope: object) -> None:
        began.append(time.monotonic())
        time.sleep(0.8)

    sink.on_data = slow  # type: ignore[assignment]
    monkeypatch.setattr(eng.Heartbeat, "run", lambda self: None)  # never renews
    t0 = time.monotonic()
    first = process_batch(ids["send"])
    assert 0 < first.sent < 5
    assert first.lost_claim == 5 - first.sent  # the rest of the group was left unsent
    assert all(t - t0 < 2 * 0.75 + 0.2 for t in began)  # nothing begun past the deadline
    monkeypatch.undo()
    sink.on_data = None

    def leases_ran_out() -> bool:
        with session_scope() as s:
            left = s.scalar(
                select(func.count()).where(
                    Delivery.state == "sending", Delivery.lease_until >= eng.utcnow()
                )
            )
        return left == 0

    wait_for(leases_ran_out, timeout=30, what="the abandoned group's lease to run out")
    drive_inline(ids["send"])
    assert _rcpts(sink) == {f"reader{i}@example.com": 1 for i in range(5)}
    with session_scope() as s:
        states = dict(
            s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )
        at_risk = s.scalar(select(func.count()).where(Delivery.at_risk))
    assert states == {"sent": 5}
    assert at_risk == 5 - first.sent  # taken over while sending: counted, never sent twice


def test_an_outcome_is_recorded_only_while_its_claim_holds_the_row(
    pg_settings: Settings, smtp_sink: tuple[int, SinkHandler]
) -> None:
    """A worker that comes back to the database after losing it records what it sent
    under its claim: the row it still holds is written ``sent``; the row another worker
    took over meanwhile (the lease ran out) is left to that worker, flagged at risk."""
    import datetime as dt
    from concurrent.futures import Future

    from newsletter.delivery import lease as eng
    from newsletter.delivery import queries
    from newsletter.delivery.outcomes import Done, Ready, finish_group
    from newsletter.delivery.smtp import Outcome

    port, _sink = smtp_sink
    _stack(pg_settings, port, lease_seconds=1)
    ids = seed(2)
    start(ids["send"])
    with session_scope() as s:
        token, (kept, lost) = claim(s, ids["send"], 2, 1)
        now = eng.utcnow()
        s.connection().exec_driver_sql(
            queries.MARK_SENDING,
            (now + dt.timedelta(seconds=1), queries.packed([kept, lost]),
             queries.packed(["<a@x>", "<b@x>"]), queries.packed(["default", "default"]),
             token, now, ids["send"]),
        )  # fmt: skip
    with session_scope() as s:  # the lease of one row runs out and another worker claims it
        s.execute(update(Delivery).where(Delivery.id == lost)
                  .values(lease_until=eng.utcnow() - dt.timedelta(seconds=1)))  # fmt: skip
        other, taken = claim(s, ids["send"], 2, 1)
    assert taken == [lost] and other != token
    with session_scope() as s:
        rows = {d.id: d for d in s.scalars(select(Delivery))}

        def done(did: int) -> Done:
            d = rows[did]
            ready = Ready(
                (d.id, d.variant, 1, d.subscriber_id, "x@example.com"),
                None,
                "",
                None,
                None,
                Future(),
                "",
                "",
                None,
            )  # type: ignore[arg-type]
            return Done(ready, Outcome("sent", 250, "ok"), "default", eng.utcnow(), False)

        assert finish_group(s, [done(kept), done(lost)], token) == 1
    with session_scope() as s:
        got = {d.id: (d.state, d.at_risk, d.claimed_by) for d in s.scalars(select(Delivery))}
    assert got[kept] == ("sent", False, None)
    assert got[lost] == ("queued", True, other)  # the other worker's: it re-sends, counted
