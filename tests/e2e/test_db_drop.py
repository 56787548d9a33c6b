"""A worker that loses its database connection mid-send sends nobody the issue twice
(issue 30: ``pg_terminate_backend`` on the workers' backends, three times, gave 100
readers two copies).

Real Celery worker and beat processes, PostgreSQL, Redis and an SMTP sink that counts
per recipient. The sink holds the 60th, 150th and 240th message's DATA until every
backend of the worker has been terminated, so each cut certainly lands while groups
are marked ``sending`` and under way: the worker knows what it sent, the database does
not. It must keep those outcomes, reconnect and record them under its still valid claim.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import psycopg
import pytest
from sqlalchemy import func, select

from newsletter.core.db import session_scope
from newsletter.models import Delivery
from tests.conftest import PG_ADMIN
from tests.e2e.procs import (
    enqueue,
    env_for,
    send_state,
    stack_settings,
    start_beat,
    start_worker,
    stop,
    wait_for,
)
from tests.factories import seed

pytestmark = pytest.mark.e2e  # real worker and beat processes

N = 300
CUTS = (60, 150, 240)


def _terminate(app: str) -> int:
    """Terminate every backend of the processes started with application_name ``app``."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        rows = c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (app,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def test_terminated_database_connections_cause_no_duplicates(
    pg_settings, redis_url, smtp_sink, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    holding = threading.Event()
    released = threading.Event()
    cuts_left = list(CUTS)

    def hold_at_cuts(envelope: object) -> None:
        if cuts_left and len(sink.messages) + 1 == cuts_left[0]:
            cuts_left.pop(0)
            released.clear()
            holding.set()
            released.wait(30)  # until the worker's connections are gone

    sink.on_data = hold_at_cuts  # type: ignore[assignment]
    cfg = stack_settings(pg_settings, redis_url, port, batch_size=100)
    ids = seed(N)
    app = f"nl-worker-{uuid.uuid4().hex[:8]}"
    # libpq takes the application name from PGAPPNAME: only the worker's backends are cut.
    worker = start_worker(cfg, env_for(cfg, tmp_path, PGAPPNAME=app,
                                       NEWSLETTER_SEND_GROUP_SIZE="25"))  # fmt: skip
    beat = start_beat(env_for(cfg, tmp_path), tmp_path)
    terminated: list[int] = []
    try:
        enqueue(cfg, "newsletter.start_send", ids["send"])
        for _ in CUTS:
            wait_for(holding.is_set, timeout=90, every=0.02, what="the sink to hold a DATA")
            holding.clear()
            terminated.append(_terminate(app))
            released.set()
        wait_for(lambda: send_state(ids["send"]) == "finished", timeout=120,
                 what="the send to finish")  # fmt: skip
    finally:
        released.set()
        stop(worker, beat)
    assert all(n > 0 for n in terminated), terminated  # every cut hit the worker
    got = Counter(r for _f, rs, _d in sink.messages for r in rs)
    assert set(got) == {f"reader{i}@example.com" for i in range(N)}  # nobody lost
    twice = sorted(r for r, n in got.items() if n > 1)
    assert not twice, f"{len(twice)} readers got the issue twice: {twice[:5]}"
    with session_scope() as s:
        states = dict(
            s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )
    assert states == {"sent": N}
