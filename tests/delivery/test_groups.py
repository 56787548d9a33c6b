"""Send groups (issue 19, B4): k messages marked ``sending`` by one statement, sent one
after another, their outcomes written by one statement; built ahead by a thread."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import event, func, select

from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import engine, session_scope
from newsletter.delivery.batch import process_batch
from newsletter.delivery.run import start
from newsletter.devtools.sink import SinkHandler
from newsletter.models import Delivery
from tests.factories import seed


def _marks(statements: list[str]) -> int:
    """Statements that mark rows ``sending`` (the only ones that set message_id)."""
    return sum(
        1
        for q in statements
        if q.lstrip().upper().startswith("UPDATE DELIVERY") and "message_id" in q
    )


@pytest.mark.parametrize("k", [1, 7, 25])
def test_one_statement_marks_a_group_and_everyone_gets_one_copy(
    any_db: Settings, smtp_sink: tuple[int, SinkHandler], k: int
) -> None:
    port, sink = smtp_sink
    reset_settings(
        any_db.model_copy(
            update={
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "batch_size": 60,
                "send_group_size": k,
            }
        )
    )
    ids = seed(50)
    start(ids["send"])
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_a) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(engine(), "before_cursor_execute", count)
    try:
        res = process_batch(ids["send"])
    finally:
        event.remove(engine(), "before_cursor_execute", count)
    assert res.sent == 50
    rcpts = Counter(r for _f, rs, _d in sink.messages for r in rs)
    assert rcpts == {f"reader{i}@example.com": 1 for i in range(50)}
    groups = -(-50 // k)
    if any_db.database_url.startswith("postgresql"):
        assert _marks(seen) == groups  # one marking statement per group
    else:
        assert _marks(seen) == 50  # SQLite marks row by row inside the group's transaction
    with session_scope() as s:
        states = dict(
            s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )
        relays = set(s.scalars(select(Delivery.relay)))
        attempts = set(s.scalars(select(Delivery.attempts)))
        no_id = s.scalar(select(func.count()).where(Delivery.message_id.is_(None)))
    assert states == {"sent": 50} and relays == {"default"} and attempts == {1} and no_id == 0


def test_the_message_ids_on_the_wire_are_the_ones_the_ledger_recorded(
    pg_settings: Settings, smtp_sink: tuple[int, SinkHandler]
) -> None:
    """The mark records each row's Message-ID before its message is built by the
    builder thread; both must agree (a re-send after a crash reuses it)."""
    import email

    port, sink = smtp_sink
    reset_settings(
        pg_settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": port, "send_group_size": 4}
        )
    )
    ids = seed(10)
    start(ids["send"])
    process_batch(ids["send"])
    wire = {}
    for _f, rs, data in sink.messages:
        wire[rs[0]] = email.message_from_bytes(data)["Message-ID"]
    with session_scope() as s:
        from newsletter.models import Subscriber

        ledger = dict(
            s.execute(
                select(Subscriber.email, Delivery.message_id).join(
                    Subscriber, Subscriber.id == Delivery.subscriber_id
                )
            ).all()
        )
    assert len(wire) == 10 and wire == ledger


def test_batches_build_ahead_only_with_a_core_per_sending_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from newsletter.delivery.batch import POOL_ENV, build_ahead

    cores = os.cpu_count() or 1
    monkeypatch.delenv(POOL_ENV, raising=False)
    assert build_ahead()  # in process (embedded mode, tests): one sending process
    monkeypatch.setenv(POOL_ENV, str(cores))
    assert build_ahead()
    monkeypatch.setenv(POOL_ENV, str(cores + 1))
    assert not build_ahead()


def test_the_worker_tells_the_engine_its_pool_size(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    from types import SimpleNamespace

    from newsletter.delivery.batch import POOL_ENV
    from workers.celery_app import _note_pool_size

    monkeypatch.delenv(POOL_ENV, raising=False)
    _note_pool_size(sender=SimpleNamespace(concurrency=8))
    assert os.environ[POOL_ENV] == "8"
    monkeypatch.delenv(POOL_ENV)


@pytest.mark.parametrize("ahead", [True, False])
def test_inline_and_ahead_builds_send_the_same(
    pg_settings: Settings,
    smtp_sink: tuple[int, SinkHandler],
    monkeypatch: pytest.MonkeyPatch,
    ahead: bool,
) -> None:
    """Inline, the sending thread builds each group's next message while the relay takes
    the one before (``meanwhile``): all but each group's first are built inside a send."""
    import threading

    from newsletter.delivery import batch as eng
    from newsletter.delivery import outcomes
    from newsletter.delivery.smtp import SmtpConnection

    monkeypatch.setattr(eng, "build_ahead", lambda: ahead)
    sending = threading.local()
    where: list[bool] = []
    real_build, real_send = outcomes.build, SmtpConnection.send

    def build(*a, **k):  # type: ignore[no-untyped-def]
        where.append(getattr(sending, "on", False))
        return real_build(*a, **k)

    def send(self, *a, **k):  # type: ignore[no-untyped-def]
        sending.on = True
        try:
            return real_send(self, *a, **k)
        finally:
            sending.on = False

    monkeypatch.setattr(outcomes, "build", build)
    monkeypatch.setattr(eng, "build", build)
    monkeypatch.setattr(SmtpConnection, "send", send)
    port, sink = smtp_sink
    reset_settings(
        pg_settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": port, "send_group_size": 6}
        )
    )
    ids = seed(20)
    start(ids["send"])
    assert process_batch(ids["send"]).sent == 20
    rcpts = Counter(r for _f, rs, _d in sink.messages for r in rs)
    assert rcpts == {f"reader{i}@example.com": 1 for i in range(20)}
    assert len(where) == 20  # each message built once
    assert sum(where) == (0 if ahead else 20 - 4)  # groups of 6, 6, 6 and 2


def test_a_claim_takes_its_limit_even_when_the_planner_picks_a_nested_loop(
    pg_settings: Settings,
) -> None:
    """Right after a send's rows are inserted (no statistics yet) PostgreSQL may plan the
    claim as a nested loop that rescans its LIMIT subquery per row: one batch then
    claimed every row of a 3,000-reader send. Forced here; the claim must take 50."""
    from sqlalchemy import text

    from newsletter.delivery.lease import claim

    ids = seed(300)
    start(ids["send"])
    with session_scope() as s:
        s.execute(text("SET LOCAL enable_hashjoin = off"))
        s.execute(text("SET LOCAL enable_mergejoin = off"))
        s.execute(text("SET LOCAL enable_material = off"))
        _token, claimed = claim(s, ids["send"], 50, 20)
    assert len(claimed) == 50
    with session_scope() as s:
        held = s.scalar(select(func.count()).where(Delivery.claimed_by.is_not(None)))
    assert held == 50


@pytest.mark.parametrize("listens", [[], ["message.delivered"], ["message.bounced"]])
def test_delivered_events_go_to_the_endpoints_listening_when_the_group_is_written(
    pg_settings: Settings, smtp_sink: tuple[int, SinkHandler], listens: list[str]
) -> None:
    """The statement that records a group as sent also reads who listens for
    ``message.delivered`` (no round trip of its own): an endpoint that asked for it gets
    one event a message, naming the message's send; one that asked for something else,
    or none at all, gets nothing."""
    from newsletter.core.events import WebhookOutbox
    from newsletter.core.safety.pinned import set_resolver
    from newsletter.delivery import eventhooks

    port, _sink = smtp_sink
    reset_settings(
        pg_settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": port, "send_group_size": 4}
        )
    )
    ids = seed(10)
    if listens:
        set_resolver(lambda host, port: ["127.0.0.2"], public=frozenset({"127.0.0.2"}))
        try:
            with session_scope() as s:
                eventhooks.create_endpoint(s, "https://hooks.example.test/in", listens, "t")
        finally:
            set_resolver(None)
    start(ids["send"])
    assert process_batch(ids["send"]).sent == 10
    with session_scope() as s:
        events = s.execute(select(WebhookOutbox.type, WebhookOutbox.payload)).all()
    if listens == ["message.delivered"]:
        assert sorted(p["data"]["delivery_id"] for _t, p in events) == sorted(
            {p["data"]["delivery_id"] for _t, p in events}
        )
        assert len(events) == 10
        assert {(t, p["data"]["send_id"]) for t, p in events} == {
            ("message.delivered", ids["send"])
        }
    else:
        assert events == []
