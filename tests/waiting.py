"""Waiting on signals: a condition polled against a deadline, never a bare sleep.

Every wait names what it waits for, so a failure says what never came.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 90.0,
    every: float = 0.05,
    what: str = "the condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy; return it.

    Fails after ``timeout`` seconds with ``what`` in the message."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"never came within {timeout:g} s: {what}")
        time.sleep(every)
