"""Hearing a pause or cancel without asking Redis before every message.

``sends.stop_flag`` sets the flag key and then publishes ``"<send id> <state>"`` on one
channel (``stop_channel``). One daemon thread per worker process (``watcher``) stays
subscribed to it and keeps what it heard in a dict, so the sending loop's check before
each message (``group._Stop``) is a dictionary lookup instead of a Redis round trip
(whose CPU cost per message showed in B4's profile, benchmarks/README.md).

The thread is trusted only while it is provably listening: it pings its own connection
every ``PING_EVERY`` seconds and counts as deaf when nothing (message or pong) came for
``DEAF_AFTER`` seconds, or its connection failed. While deaf, the loop falls back to one
GET a message, as before. Every time the thread (re)subscribes it starts a new
*generation*; a loop reads the flag key once with GET under each generation, after the
subscription was confirmed, so a flag raised before it subscribed is not missed: a flag
raised before that GET is seen by the GET, one raised after it is published after the
subscription and heard.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from newsletter.core.caches import on_reset
from newsletter.core.config import get_settings

__all__ = ["Watcher", "stop_channel", "watcher"]

log = logging.getLogger(__name__)

PING_EVERY = 1.0
DEAF_AFTER = 3.0


def stop_channel() -> str:
    return f"{get_settings().redis_prefix}send-stop"


class Watcher:
    """The process's listener on the stop channel (see the module's docstring)."""

    def __init__(self, client: Any, channel: str) -> None:
        self._client = client
        self._channel = channel
        self._lock = threading.Lock()
        #: send id → state heard on the channel (None: lowered)
        self._heard: dict[int, str | None] = {}
        self._generation = 0
        self._subscribed = False
        self._last_heard = 0.0
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="send-stop-watcher", daemon=True)
        self._thread.start()

    # -- what the sending loop asks ------------------------------------------------
    def generation(self) -> int | None:
        """The current generation while listening, None while deaf."""
        with self._lock:
            if not self._subscribed or time.monotonic() - self._last_heard > DEAF_AFTER:
                return None
            return self._generation

    def heard(self, send_id: int) -> tuple[bool, str | None]:
        """(whether anything was heard about ``send_id`` in this process, the last state
        heard: None when the flag was lowered)."""
        with self._lock:
            if send_id in self._heard:
                return True, self._heard[send_id]
            return False, None

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def close(self) -> None:
        self._closed.set()

    # -- the thread ----------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.5
        while not self._closed.is_set():
            pubsub = None
            try:
                pubsub = self._client.pubsub()
                pubsub.subscribe(self._channel)
                next_ping = 0.0
                while not self._closed.is_set():
                    now = time.monotonic()
                    if now >= next_ping:
                        pubsub.ping()
                        next_ping = now + PING_EVERY
                    message = pubsub.get_message(timeout=PING_EVERY)
                    if message is not None:
                        self._take(message)
                        backoff = 0.5
            except Exception as exc:  # Redis gone: deaf until the next subscription
                log.info("stop-flag listener lost Redis (%s)", exc.__class__.__name__)
            finally:
                with self._lock:
                    self._subscribed = False
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # the connection is already gone
                        log.debug("closing the stop-flag subscription failed", exc_info=True)
            self._closed.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def _take(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        with self._lock:
            self._last_heard = time.monotonic()
            if kind == "subscribe":
                # What was heard before a gap may be older than what a loop reads next.
                self._heard.clear()
                self._generation += 1
                self._subscribed = True
                self._ready.set()
            elif kind == "message":
                data = message.get("data") or b""
                text = data.decode("ascii", "replace") if isinstance(data, bytes) else str(data)
                send, _, state = text.partition(" ")
                if send.isdigit():
                    self._heard[int(send)] = state or None


_watcher: Watcher | None = None
#: (process id, Redis URL, channel) the watcher was started for
_watcher_for: tuple[int, str, str] = (0, "", "")
_watcher_lock = threading.Lock()


def watcher() -> Watcher | None:
    """This process's watcher for the configured Redis and channel (started on first use,
    again after a fork or a settings change); None without Redis."""
    global _watcher, _watcher_for
    url = get_settings().redis_url
    if not url:
        return None
    wanted = (os.getpid(), url, stop_channel())
    with _watcher_lock:
        if _watcher is None or _watcher_for != wanted:
            from newsletter.core.redis import redis_client

            if _watcher is not None and _watcher_for[0] == wanted[0]:
                _watcher.close()
            _watcher = Watcher(redis_client(), wanted[2])
            _watcher_for = wanted
        return _watcher


@on_reset
def reset() -> None:
    """Stop and forget this process's watcher (tests, a settings change)."""
    global _watcher
    with _watcher_lock:
        if _watcher is not None:
            _watcher.close()
        _watcher = None
