"""Rate limits shared through Redis, deferral instead of stalling, and auto-pause."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.run import drive_inline, start, step
from newsletter.delivery.sends import state_counts
from newsletter.delivery.throttle import Throttle
from newsletter.models import AuditLog, Delivery, Send
from tests.factories import seed


def test_buckets_are_shared_between_workers_through_redis(sqlite_settings, redis_url) -> None:  # type: ignore[no-untyped-def]
    reset_settings(
        sqlite_settings.model_copy(
            update={"redis_url": redis_url, "redis_prefix": f"nltest:{uuid.uuid4().hex[:8]}:"}
        )
    )
    # One message per 10 s: the second worker must wait for most of that, however
    # slowly a loaded machine runs the two calls.
    a = Throttle(domain_rates={"qq.com": 0.1})
    b = Throttle(domain_rates={"qq.com": 0.1})  # another worker process, same Redis
    assert a.acquire("news@example.org", "x@qq.com") == 0
    assert b.acquire("news@example.org", "y@qq.com") > 5
    assert a.acquire("news@example.org", "z@163.com") == 0  # other domains are not limited


def test_a_slow_domain_defers_instead_of_stalling(sqlite_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    reset_settings(
        sqlite_settings.model_copy(
            update={
                # 2 messages/s: a batch is throttled unless its ten sends took over 4 s.
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "domain_rates": {"example.com": 2.0},
                "max_throttle_sleep": 0.0,
            }
        )
    )
    ids = seed(10)
    start(ids["send"])
    first = step(ids["send"])
    assert first.result is not None and first.result.throttled > 0 and first.result.sent >= 1
    assert drive_inline(ids["send"], max_wait=10) == "finished"
    rcpts = [r for _f, rs, _d in sink.messages for r in rs]
    assert len(rcpts) == len(set(rcpts)) == 10
    with session_scope() as s:
        times = sorted(t for t in s.scalars(select(Delivery.sent_at)) if t)
    assert (times[-1] - times[0]).total_seconds() >= (10 - 2) / 2 * 0.8


def test_send_auto_pauses_when_the_relay_keeps_failing(sqlite_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    reset_settings(
        sqlite_settings.model_copy(
            # a 4xx pause that heals is tests/delivery/test_4xx_heal.py
            update={
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "batch_size": 25,
                "auto_resume_4xx": False,
            }
        )
    )
    sink.on_data = lambda envelope: "451 4.3.0 local problem, try later"
    ids = seed(40)
    assert drive_inline(ids["send"], max_wait=0) == "paused"
    with session_scope() as s:
        send = s.get(Send, ids["send"])
        assert send is not None and "auto-paused" in (send.error or "")
        counts = state_counts(s, ids["send"])
        assert counts["deferred"] == 25 and counts["queued"] == 15
        assert s.scalar(select(AuditLog.id).where(AuditLog.action == "notify.auto_paused"))
