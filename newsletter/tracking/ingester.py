"""The event ingester: consume the Redis stream in batches, acknowledge after commit.

A consumer group lets several ingesters share the stream.  Messages are
acknowledged only after :func:`~newsletter.tracking.events.ingest` committed
them, so a crash loses nothing; messages left pending by a dead consumer are
reclaimed with ``XAUTOCLAIM`` after ``idle_ms``.  Because ingestion is
idempotent (unique event uid), a redelivered message is never counted twice.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..config import get_settings
from ..delivery.engine import worker_name
from ..redisconn import redis_client
from .events import STREAM, ingest

__all__ = ["consume"]

log = logging.getLogger(__name__)
GROUP = "ingest"


def _ensure_group(r: Any, key: str) -> None:
    try:
        r.xgroup_create(key, GROUP, id="0", mkstream=True)
    except Exception as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _handle(r: Any, key: str, messages: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
    if not messages:
        return 0
    events = []
    for _mid, fields in messages:
        try:
            events.append(json.loads(fields[b"e"]))
        except (KeyError, ValueError):
            log.warning("dropping malformed stream entry %s", _mid)
    ingest(events)
    r.xack(key, GROUP, *[m for m, _ in messages])
    r.xdel(key, *[m for m, _ in messages])
    return len(messages)


def consume(
    *, block_ms: int = 1000, count: int = 500, max_batches: int | None = None, idle_ms: int = 30000
) -> int:
    """Ingest up to ``max_batches`` batches (forever if None). Returns events handled."""
    cfg = get_settings()
    r = redis_client()
    key = cfg.redis_prefix + STREAM
    _ensure_group(r, key)
    me = worker_name()
    handled = 0
    # Recover what a crashed ingester left unacknowledged.
    res = r.xautoclaim(key, GROUP, me, min_idle_time=idle_ms, start_id="0-0", count=count)
    handled += _handle(r, key, res[1])
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        resp = r.xreadgroup(GROUP, me, {key: ">"}, count=count, block=block_ms)
        if not resp:
            if max_batches is not None:
                break
            continue
        for _stream, messages in resp:
            handled += _handle(r, key, messages)
    return handled
