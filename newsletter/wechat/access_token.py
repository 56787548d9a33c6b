"""The shared access-token cache.

Guarantees:

* one token per (API base URL, AppID), shared by every process: through Redis
  (``{redis_prefix}wechat:token:…``) when ``NEWSLETTER_REDIS_URL`` is set, else through
  the database (the ``wechat_token`` row of the key: the token, the instant it is
  refreshed early and its generation);
* at most one holder refreshes at a time (a Redis lock, or the row's lock:
  ``SELECT … FOR UPDATE`` held while WeChat is asked), and the others wait and then
  read what it stored; a ``threading.Lock`` keeps a process's own threads in line first;
* :meth:`TokenStore.invalidate` replaces the token only if it is still the one the
  caller saw rejected, so N processes meeting 40001/42001 together refresh once: one
  fetch per token generation, however many processes share the account.

On SQLite (the embedded mode: one process) ``FOR UPDATE`` does nothing and the thread
lock is what serialises refreshes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.core import clock
from newsletter.core.db import session_scope
from newsletter.models.wechat import WeChatToken

__all__ = ["Fetch", "TokenStore", "clear_local_tokens"]

#: fetch(force) -> (token, expires_in seconds)
Fetch = Callable[[bool], tuple[str, int]]

_local_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def clear_local_tokens() -> None:
    """Forget this process's refresh locks (tests); tokens live in Redis or the database."""
    with _guard:
        _local_locks.clear()


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
        self.key = f"{prefix}wechat:token:{appid}:{key}"[:120]
        self.margin = margin
        self._redis: Any = None
        if redis_url:
            from newsletter.core.redis import _client

            self._redis = _client(redis_url)

    def _thread_lock(self) -> threading.Lock:
        with _guard:
            return _local_locks.setdefault(self.key, threading.Lock())

    def _early(self, expires_in: int) -> float:
        """The instant to refresh a token that lives ``expires_in`` more seconds."""
        early = self.margin if expires_in > 2 * self.margin else expires_in / 2
        return clock.timestamp() + expires_in - early

    @staticmethod
    def _fresh(entry: tuple[str, float] | None) -> bool:
        """``entry`` holds (token, refresh_at): the early-refresh instant is stored."""
        return entry is not None and bool(entry[0]) and entry[1] > clock.timestamp()

    # -- Redis -------------------------------------------------------------
    def _read(self) -> tuple[str, float] | None:
        if self._redis is None:
            with session_scope() as s:
                row = s.get(WeChatToken, self.key)
                return None if row is None else (row.token, row.refresh_at)
        raw = self._redis.get(self.key)
        if not raw:
            return None
        data = json.loads(raw)
        return str(data["token"]), float(data["refresh_at"])

    def _redis_write(self, token: str, refresh_at: float) -> None:
        ttl = max(1, int(refresh_at - clock.timestamp()) + 1)
        self._redis.set(self.key, json.dumps({"token": token, "refresh_at": refresh_at}), ex=ttl)

    def _redis_lock(self) -> AbstractContextManager[Any]:
        lock = self._redis.lock(self.key + ":lock", timeout=60, blocking_timeout=60)
        return lock if lock is not None else nullcontext()

    def _redis_refresh(self, fetch: Fetch, rejected: str | None) -> str:
        with self._redis_lock():
            entry = self._read()  # someone else may have refreshed while we waited
            if self._fresh(entry) and entry is not None and entry[0] != rejected:
                return entry[0]
            token, expires_in = fetch(rejected is not None)
            self._redis_write(token, self._early(expires_in))
            return token

    # -- the database ----------------------------------------------------------
    def _db_refresh(self, fetch: Fetch, rejected: str | None) -> str:
        """Under the row's lock: the stored token if another holder already refreshed it,
        else a fetch (forced when ``rejected``) stored as the next generation."""
        with session_scope() as s:
            ins = (
                postgresql.insert(WeChatToken)
                if s.get_bind().dialect.name == "postgresql"
                else sqlite.insert(WeChatToken)
            )
            s.execute(
                ins.values(
                    key=self.key, token="", refresh_at=0.0, generation=0, updated_at=clock.now()
                ).on_conflict_do_nothing(index_elements=["key"])
            )
            row = s.scalars(
                select(WeChatToken)
                .where(WeChatToken.key == self.key)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one()
            if self._fresh((row.token, row.refresh_at)) and row.token != rejected:
                return row.token
            token, expires_in = fetch(rejected is not None)
            row.token, row.refresh_at = token, self._early(expires_in)
            row.generation += 1
            row.updated_at = clock.now()
            return token

    def generation(self) -> int:
        """How many times the shared token was fetched (the database store; 0 with Redis)."""
        if self._redis is not None:
            return 0
        with session_scope() as s:
            row = s.get(WeChatToken, self.key)
            return 0 if row is None else row.generation

    # -- API ---------------------------------------------------------------
    def get(self, fetch: Fetch) -> str:
        """A token valid for at least ``margin`` more seconds (refreshing it if needed)."""
        entry = self._read()
        if entry is not None and self._fresh(entry):
            return entry[0]
        return self._refresh(fetch, None)

    def invalidate(self, rejected: str, fetch: Fetch) -> str:
        """WeChat rejected ``rejected``: a new token, refreshed once across all holders."""
        return self._refresh(fetch, rejected)

    def _refresh(self, fetch: Fetch, rejected: str | None) -> str:
        with self._thread_lock():
            if self._redis is not None:
                return self._redis_refresh(fetch, rejected)
            return self._db_refresh(fetch, rejected)

    def drop(self) -> None:
        """Forget the cached token."""
        if self._redis is None:
            with session_scope() as s:
                row = s.get(WeChatToken, self.key)
                if row is not None:
                    s.delete(row)
        else:
            self._redis.delete(self.key)
