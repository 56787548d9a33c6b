"""Process-wide memories (caches, throttles, replay guards) that can be forgotten at once.

A module that keeps state for the life of a process registers it here, so a long-lived
process can drop it (``reset_all``) and a test suite can start every test from a clean
process (``tests/conftest.py`` calls it around each test). A new cache that forgets to
register shows up as order-dependent tests under ``pytest-randomly``.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import TypeVar

__all__ = ["on_reset", "process_cache", "reset_all"]

M = TypeVar("M", bound=MutableMapping)  # type: ignore[type-arg]
_resets: list[Callable[[], None]] = []


def process_cache(mapping: M) -> M:
    """Register ``mapping`` (a module-level dict) to be emptied by :func:`reset_all`."""
    _resets.append(mapping.clear)
    return mapping


def on_reset(fn: Callable[[], None]) -> Callable[[], None]:
    """Register ``fn`` to run on :func:`reset_all` (for state that is not a dict)."""
    _resets.append(fn)
    return fn


def reset_all() -> None:
    """Forget every registered process-wide memory."""
    for fn in _resets:
        fn()
