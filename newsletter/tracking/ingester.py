"""The event ingester: consume the Redis stream in batches, acknowledge after commit.

A consumer group lets several ingesters share the stream.  Messages are
acknowledged only after :func:`~newsletter.tracking.rollups.ingest` committed
them, so a crash (even ``kill -9`` in the middle of a batch) loses nothing:
the transaction rolls back and the messages stay pending.  Messages left
pending by a dead consumer are reclaimed with ``XAUTOCLAIM`` once idle for
``idle_ms``, at start and then every ``claim_every`` seconds.  Because
ingestion is idempotent (unique event uid, unique markers), a message
redelivered after a crash between commit and ``XACK`` is never counted twice.
Each pass also replays the local spool (events the web processes could not
hand to Redis or the database).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from newsletter.core.config import get_settings
from newsletter.core.process import worker_name
from newsletter.core.redis import redis_client
from newsletter.tracking.intake import GROUP, STREAM, replay_spool
from newsletter.tracking.rollups import ingest

__all__ = ["GROUP", "consume"]

log = logging.getLogger(__name__)


def _ensure_group(r: Any, key: str) -> None:
    try:
        r.xgroup_create(key, GROUP, id="0", mkstream=True)
    except Exception as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _handle(r: Any, key: str, messages: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
    messages = [(m, f) for m, f in messages if f]  # XAUTOCLAIM may return deleted entries
    if not messages:
        return 0
    events = []
    for mid, fields in messages:
        try:
            events.append(json.loads(fields[b"e"]))
        except (KeyError, ValueError):
            log.warning("dropping malformed stream entry %s", mid)
    ingest(events)  # commits; only then acknowledge
    from newsletter.core.telemetry import EVENTS_INGESTED

    EVENTS_INGESTED.inc(len(events))
    ids = [m for m, _ in messages]
    r.xack(key, GROUP, *ids)
    r.xdel(key, *ids)
    return len(messages)


def _reclaim(r: Any, key: str, me: str, idle_ms: int, count: int) -> int:
    """Take over and ingest what dead consumers left pending (idle ≥ idle_ms)."""
    handled = 0
    start = "0-0"
    while True:
        res = r.xautoclaim(key, GROUP, me, min_idle_time=idle_ms, start_id=start, count=count)
        handled += _handle(r, key, res[1])
        start = res[0].decode() if isinstance(res[0], bytes) else str(res[0])
        if start == "0-0":
            return handled


def _handle_retrying(r: Any, key: str, messages: list[Any], attempts: int = 4) -> int:
    """:func:`_handle`, again at once when the database broke a deadlock or a
    serialization conflict between ingesters (the whole batch was rolled back)."""
    from sqlalchemy.exc import OperationalError

    for attempt in range(attempts):
        try:
            return _handle(r, key, messages)
        except OperationalError as exc:
            text = str(exc.orig or exc).lower()
            if attempt + 1 == attempts or not ("deadlock" in text or "serializ" in text):
                raise
            log.info("ingest batch retried after %s", text.splitlines()[0][:80])
            time.sleep(0.05 * (attempt + 1))
    return 0


def consume(
    *,
    block_ms: int = 1000,
    count: int = 500,
    max_batches: int | None = None,
    idle_ms: int = 30000,
    claim_every: float = 15.0,
) -> int:
    """Ingest up to ``max_batches`` batches (forever if None). Returns events handled.

    With ``max_batches`` set, stops early when the stream has nothing new.
    """
    cfg = get_settings()
    r = redis_client()
    key = cfg.redis_prefix + STREAM
    _ensure_group(r, key)
    me = worker_name()
    handled = replay_spool()
    handled += _reclaim(r, key, me, idle_ms, count)
    last_claim = time.monotonic()
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        if time.monotonic() - last_claim >= claim_every:
            last_claim = time.monotonic()
            try:
                handled += replay_spool() + _reclaim(r, key, me, idle_ms, count)
            except Exception:
                log.exception("reclaim/replay failed; retrying later")
        resp = r.xreadgroup(GROUP, me, {key: ">"}, count=count, block=block_ms)
        if not resp:
            if max_batches is not None:
                break
            continue
        for _stream, messages in resp:
            try:
                handled += _handle_retrying(r, key, messages)
            except Exception:
                # Not acknowledged: the messages stay pending and are reclaimed later.
                log.exception("ingest failed for %d messages; left pending", len(messages))
                if max_batches is not None:
                    raise
                time.sleep(1.0)
    return handled
