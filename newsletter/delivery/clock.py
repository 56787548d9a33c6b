"""The delivery engine's clock, injectable so tests can simulate days.

Everything that decides *when* a delivery is due (claims, back-off, warm-up days,
relay probes) asks :func:`now`. Production uses the wall clock; a test calls
:func:`set_clock` with its own function and moves it forward a day at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ..models import utcnow

__all__ = ["now", "set_clock"]

_clock: Callable[[], dt.datetime] = utcnow


def now() -> dt.datetime:
    """The current time (UTC, aware) as the engine sees it."""
    return _clock()


def set_clock(fn: Callable[[], dt.datetime] | None) -> None:
    """Use ``fn`` as the engine's clock; ``None`` restores the wall clock."""
    global _clock
    _clock = fn or utcnow
