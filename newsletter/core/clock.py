"""The product's one clock.

Every "now" that the product compares, stores or signs (sends, leases, warm-up days,
``updated_at``, tokens, statistics ranges) comes from :func:`now` or :func:`timestamp`.
A test that simulates time calls :func:`set_clock`; nothing else reads the wall clock,
so simulated and real time can never meet in one comparison (``tests/test_structure.py``
fails on a new direct call outside this module).

Durations and deadlines inside one process use ``time.monotonic()``, which is not a
clock of dates and is allowed anywhere.

``NEWSLETTER_CLOCK_OFFSET`` (seconds, or days with a ``d``: ``365d``) moves this clock for
a whole process tree: ``make test-future`` runs the suite a year ahead with it, so no
comparison can depend on today's date. It is for testing; production leaves it unset.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable

__all__ = ["micros", "now", "set_clock", "timestamp", "today_in"]

_override: Callable[[], dt.datetime] | None = None


def _offset_seconds(raw: str) -> float:
    raw = raw.strip()
    if not raw:
        return 0.0
    return float(raw[:-1]) * 86400 if raw.endswith("d") else float(raw)


_OFFSET = _offset_seconds(os.environ.get("NEWSLETTER_CLOCK_OFFSET", ""))
_OFFSET_NS = int(_OFFSET * 1_000_000_000)


def _wall() -> dt.datetime:
    return dt.datetime.fromtimestamp(time.time() + _OFFSET, dt.UTC)


def now() -> dt.datetime:
    """The current time, UTC and aware."""
    return _override() if _override is not None else _wall()


def timestamp() -> float:
    """The current time as seconds since the epoch (for signed tokens and TTLs)."""
    return now().timestamp() if _override is not None else time.time() + _OFFSET


def micros() -> int:
    """The current time in whole microseconds since the epoch (event stamps; hot path)."""
    if _override is not None:
        return int(now().timestamp() * 1_000_000)
    return (time.time_ns() + _OFFSET_NS) // 1000  # integers: exact to the microsecond


def today_in(tz: dt.tzinfo) -> dt.date:
    """Today's date in ``tz`` (a publication's zone, China Standard Time...)."""
    return now().astimezone(tz).date()


def set_clock(fn: Callable[[], dt.datetime] | None) -> None:
    """Use ``fn`` as the clock everywhere; ``None`` restores the wall clock."""
    global _override
    _override = fn
