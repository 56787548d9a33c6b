"""The shared access-token cache.

Guarantees:

* one token per (API base URL, AppID), shared by every worker through Redis
  (``{redis_prefix}wechat:token:…``) or, in the embedded mode (no
  ``NEWSLETTER_REDIS_URL``), by every thread of the process;
* at most one holder refreshes at a time (a Redis lock, or a ``threading.Lock``);
  the others wait and then read what it stored;
* :meth:`TokenStore.invalidate` replaces the token only if it is still the one the
  caller saw rejected, so N workers meeting 42001 together refresh once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from newsletter.core import clock
from newsletter.core.caches import process_cache

__all__ = ["Fetch", "TokenStore", "clear_local_tokens"]

#: fetch(force) -> (token, expires_in seconds)
Fetch = Callable[[bool], tuple[str, int]]

_local: dict[str, tuple[str, float]] = process_cache({})
_local_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def clear_local_tokens() -> None:
    """Forget every in-process token (tests)."""
    with _guard:
        _local.clear()


class TokenStore:
    """Reads, shares and refreshes the access token of one account."""

    def __init__(
        self,
        base_url: str,
        appid: str,
        *,
        redis_url: str = "",
        prefix: str = "nl:",
        margin: int = 300,
    ) -> None:
        key = hashlib.sha1(f"{base_url}|{appid}".encode()).hexdigest()[:16]
        self.key = f"{prefix}wechat:token:{appid}:{key}"
        self.margin = margin
        self._redis: Any = None
        if redis_url:
            from newsletter.core.redis import _client

            self._redis = _client(redis_url)

    # -- storage ---------------------------------------------------------
    def _read(self) -> tuple[str, float] | None:
        if self._redis is None:
            return _local.get(self.key)
        raw = self._redis.get(self.key)
        if not raw:
            return None
        data = json.loads(raw)
        return str(data["token"]), float(data["refresh_at"])

    def _write(self, token: str, refresh_at: float) -> None:
        if self._redis is None:
            _local[self.key] = (token, refresh_at)
            return
        ttl = max(1, int(refresh_at - clock.timestamp()) + 1)
        self._redis.set(self.key, json.dumps({"token": token, "refresh_at": refresh_at}), ex=ttl)

    def _lock(self) -> AbstractContextManager[Any]:
        if self._redis is None:
            with _guard:
                lock = _local_locks.setdefault(self.key, threading.Lock())
            return lock
        lock = self._redis.lock(self.key + ":lock", timeout=60, blocking_timeout=60)
        return lock if lock is not None else nullcontext()

    @staticmethod
    def _fresh(entry: tuple[str, float] | None) -> bool:
        """``entry`` holds (token, refresh_at): the early-refresh instant is stored."""
        return entry is not None and entry[1] > clock.timestamp()

    # -- API ---------------------------------------------------------------
    def get(self, fetch: Fetch) -> str:
        """A token valid for at least ``margin`` more seconds (refreshing it if needed)."""
        entry = self._read()
        if entry is not None and self._fresh(entry):
            return entry[0]
        with self._lock():
            entry = self._read()  # someone else may have refreshed while we waited
            if entry is not None and self._fresh(entry):
                return entry[0]
            return self._refresh(fetch, force=False)

    def invalidate(self, rejected: str, fetch: Fetch) -> str:
        """WeChat rejected ``rejected``: a new token, refreshed once across all holders."""
        with self._lock():
            entry = self._read()
            if entry is not None and entry[0] != rejected and self._fresh(entry):
                return entry[0]
            return self._refresh(fetch, force=True)

    def _refresh(self, fetch: Fetch, *, force: bool) -> str:
        token, expires_in = fetch(force)
        early = self.margin if expires_in > 2 * self.margin else expires_in / 2
        self._write(token, clock.timestamp() + expires_in - early)
        return token

    def drop(self) -> None:
        """Forget the cached token."""
        if self._redis is None:
            _local.pop(self.key, None)
        else:
            self._redis.delete(self.key)
