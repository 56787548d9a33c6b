"""Group-committed ``XADD``: the asynchronous hand-off of events to the Redis stream.

The open pixel's servers (:mod:`newsletter.tracking.pixelserver`, and the ASGI fast
path in :mod:`newsletter.web.pixel`) answer a request only after its event is
safe, and they answer tens of thousands a second.  :class:`EventWriter` makes
that cheap:

* **Group commit.**  Events added during one event-loop turn form a batch,
  written to Redis at the end of the turn as one pipelined write of ``XADD``
  commands (``XADD <prefix>events * e <json>``, exactly what
  :func:`~newsletter.tracking.intake.submit` writes).  Batches are not held
  back waiting for a size or a timer, so a quiet server answers at once and a
  busy one makes large batches by itself.
* **In order.**  Batches complete strictly in the order they were formed (Redis
  answers a connection in order; the fallback is ordered the same way), so a
  connection's pipelined responses can be released in order.
* **No open lost.**  If Redis answers an error, times out (2 s) or drops the
  connection, the batch goes to the fallback in a thread: a direct insert,
  then the local spool (:func:`~newsletter.tracking.intake.store_directly`),
  and a circuit breaker sends the next 5 s of batches there without trying
  Redis.  A batch that Redis stored in part and then failed is also stored
  directly: ingestion is idempotent (event uids), so nothing is counted twice.
  Without a Redis URL (embedded mode) every batch is stored directly.

A tiny RESP2 client is used rather than ``redis.asyncio``: only ``AUTH``,
``SELECT`` and ``XADD`` are ever sent, and building and parsing them by hand
costs a fraction of a general client's per-command overhead.  URLs are parsed
by redis-py (``redis://``, ``rediss://``, ``unix://``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, cast

from newsletter.tracking.intake import store_directly

__all__ = ["Batch", "EventWriter"]

log = logging.getLogger(__name__)

_TIMEOUT = 2.0  # seconds for Redis to answer a batch (or to connect)
_BREAKER = 5.0  # seconds during which batches skip Redis after a failure


class Batch:
    """Events added in one loop turn.  ``waiters`` are told (``released()``) once it is safe."""

    __slots__ = ("future", "payloads", "released", "sent_at", "stored", "waiters")

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.waiters: list[Any] = []  # objects with a released() method
        self.future: asyncio.Future[None] | None = None
        self.stored = False  # Redis or the fallback has it
        self.released = False  # and every earlier batch too: responses may go out
        self.sent_at = 0.0

    def wait(self) -> asyncio.Future[None]:
        """A future resolved on release (for coroutine callers; the servers use ``waiters``)."""
        if self.future is None:
            self.future = asyncio.get_running_loop().create_future()
            if self.released:
                self.future.set_result(None)
        return self.future


def _command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class _Resp(asyncio.Protocol):
    """One Redis connection: writes commands, counts replies, reports each group's outcome."""

    def __init__(self, lost: Callable[[Exception | None], None]) -> None:
        self.transport: asyncio.Transport | None = None
        self._lost = lost
        self._buf = b""
        # Each expectation: [replies still due, ok so far, callback(ok, error), first error].
        self.expect: collections.deque[list[Any]] = collections.deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._lost(exc)

    def send(self, data: bytes, replies: int, callback: Callable[[bool, str], None]) -> None:
        assert self.transport is not None
        self.expect.append([replies, True, callback, ""])
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos, n = 0, len(buf)
        expect = self.expect
        while pos < n:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                break
            kind = buf[pos]
            if kind == 36:  # $ bulk string (XADD's reply: the entry id)
                size = int(buf[pos + 1 : nl])
                end = nl + 4 + size if size >= 0 else nl + 2
                if end > n:
                    break
                ok = True
            elif kind == 43 or kind == 58:  # + simple string (AUTH, SELECT), : integer
                end, ok = nl + 2, True
            elif kind == 45:  # - error
                end, ok = nl + 2, False
            else:  # nothing else is ever asked for: a confused connection
                log.error("unexpected reply from Redis: %r", buf[pos : pos + 40])
                self.abort()
                return
            if not expect:
                log.error("reply from Redis that nothing asked for: %r", buf[pos:end])
                self.abort()
                return
            head = expect[0]
            head[0] -= 1
            if not ok and head[1]:
                head[1] = False
                head[3] = buf[pos + 1 : nl].decode("utf-8", "replace")
            pos = end
            if head[0] == 0:
                expect.popleft()
                head[2](head[1], head[3])
                if self.transport is None:  # the callback closed the connection
                    return
        self._buf = buf[pos:] if pos < n else b""

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class EventWriter:
    """Writes JSON-encoded events (``bytes``) to the stream in group-committed batches."""

    def __init__(
        self,
        redis_url: str,
        key: str,
        *,
        timeout: float = _TIMEOUT,
        breaker: float = _BREAKER,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.redis_url = redis_url
        self.key = key
        self._timeout = timeout
        self._breaker = breaker
        self._prefix = b"*5\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$1\r\ne\r\n" % (
            len(key.encode()),
            key.encode(),
        )
        self._open: Batch | None = None  # the batch of the current loop turn
        self._pending: collections.deque[Batch] = collections.deque()  # formed, not released
        self._unsent: list[Batch] = []  # waiting for the connection
        self._conn: _Resp | None = None
        self._ready = False  # connected and authenticated
        self._connecting: asyncio.Task[None] | None = None
        self._down_until = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self.stats = {"batches": 0, "events": 0, "fallback_batches": 0}

    def ready(self) -> bool:
        """False while the breaker holds writes off after a failed connection."""
        return not self.redis_url or time.monotonic() >= self._down_until

    # -- adding -------------------------------------------------------------------

    def add(self, payload: bytes) -> Batch:
        """Queue one event for the batch of this loop turn and return that batch."""
        batch = self._open
        if batch is None:
            batch = self._open = Batch()
            self.loop.call_soon(self._flush)
        batch.payloads.append(payload)
        return batch

    async def record(self, payload: bytes) -> None:
        """Add the event and wait until it is safe (Redis or the fallback)."""
        await asyncio.shield(self.add(payload).wait())

    # -- flushing -----------------------------------------------------------------

    def _flush(self) -> None:
        batch, self._open = self._open, None
        if batch is None:
            return
        self._pending.append(batch)
        self.stats["batches"] += 1
        self.stats["events"] += len(batch.payloads)
        if not self.redis_url or time.monotonic() < self._down_until:
            self._fallback(batch)
        elif self._ready:
            self._send(batch)
        else:
            self._unsent.append(batch)
            if self._connecting is None:
                self._connecting = self.loop.create_task(self._connect())

    def _send(self, batch: Batch) -> None:
        assert self._conn is not None
        prefix = self._prefix
        data = b"".join([prefix + b"$%d\r\n%s\r\n" % (len(p), p) for p in batch.payloads])
        batch.sent_at = self.loop.time()
        self._conn.send(data, len(batch.payloads), lambda ok, err: self._replied(batch, ok, err))
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(self._timeout / 4, self._watch)

    def _replied(self, batch: Batch, ok: bool, err: str) -> None:
        if ok:
            self._stored(batch)
            return
        log.warning("Redis refused a batch of %d events (%s); storing them directly",
                    len(batch.payloads), err)  # fmt: skip
        self._trip()
        self._fallback(batch)

    def _stored(self, batch: Batch) -> None:
        batch.stored = True
        pending = self._pending
        while pending and pending[0].stored:
            done = pending.popleft()
            done.released = True
            for w in done.waiters:
                w.released()
            if done.future is not None and not done.future.done():
                done.future.set_result(None)

    def _watch(self) -> None:
        """Abort a connection whose oldest batch has waited longer than the timeout."""
        self._watchdog = None
        conn = self._conn
        if conn is None or not conn.expect:
            return
        oldest = next((b for b in self._pending if b.sent_at and not b.stored), None)
        if oldest is not None and self.loop.time() - oldest.sent_at > self._timeout:
            log.warning("Redis did not answer within %.1f s", self._timeout)
            conn.abort()
            return
        self._watchdog = self.loop.call_later(self._timeout / 4, self._watch)

    # -- the connection --------------------------------------------------------------

    async def _connect(self) -> None:
        conn = _Resp(self._lost)
        try:
            from redis.connection import parse_url

            opts = parse_url(self.redis_url)
            if opts.get("path"):
                coro = self.loop.create_unix_connection(lambda: conn, opts["path"])
            else:
                ctx = None
                if self.redis_url.startswith("rediss://"):
                    ctx = ssl.create_default_context(cafile=opts.get("ssl_ca_certs"))
                    if opts.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                        ctx.check_hostname = False
                        ctx.verify_mode = ssl.CERT_NONE
                coro = self.loop.create_connection(
                    lambda: conn, opts.get("host", "localhost"), opts.get("port", 6379), ssl=ctx
                )
            await asyncio.wait_for(coro, self._timeout)
            hello = b""
            replies = 0
            if opts.get("password"):
                auth = [b"AUTH", str(opts["password"]).encode()]
                if opts.get("username"):
                    auth.insert(1, str(opts["username"]).encode())
                hello += _command(*auth)
                replies += 1
            if opts.get("db"):
                hello += _command(b"SELECT", str(opts["db"]).encode())
                replies += 1
            if replies:
                done: asyncio.Future[tuple[bool, str]] = self.loop.create_future()
                conn.send(hello, replies, lambda ok, err: done.set_result((ok, err)))
                ok, err = await asyncio.wait_for(done, self._timeout)
                if not ok:
                    raise ConnectionError(f"Redis refused the connection setup: {err}")
        except Exception as exc:
            conn.abort()
            self._connecting = None
            log.warning("Redis unavailable (%s); storing events directly for %.0f s",
                        exc or type(exc).__name__, self._breaker)  # fmt: skip
            self._trip()
            unsent, self._unsent = self._unsent, []
            for batch in unsent:
                self._fallback(batch)
            return
        self._connecting = None
        self._conn, self._ready = conn, True
        unsent, self._unsent = self._unsent, []
        for batch in unsent:
            self._send(batch)

    def _lost(self, exc: Exception | None) -> None:
        conn, self._conn, self._ready = self._conn, None, False
        if conn is None:
            return
        waiting = [b for b in self._pending if b.sent_at and not b.stored]
        if waiting:
            log.warning("lost the Redis connection (%s) with %d batches unanswered",
                        exc or "closed", len(waiting))  # fmt: skip
            self._trip()
        conn.expect.clear()
        for batch in waiting:
            self._fallback(batch)

    def _trip(self) -> None:
        self._down_until = time.monotonic() + self._breaker
        if self._conn is not None:
            self._conn.abort()

    # -- the fallback ------------------------------------------------------------------

    def _fallback(self, batch: Batch) -> None:
        batch.sent_at = 0.0
        self.stats["fallback_batches"] += 1
        fut = self.loop.run_in_executor(None, _store_directly, batch.payloads)
        fut.add_done_callback(lambda _f: self._stored(batch))

    # -- closing -----------------------------------------------------------------------

    async def close(self, timeout: float = 10.0) -> None:
        """Flush the current batch, wait (up to ``timeout``) for every batch, disconnect."""
        self._flush()
        end = self.loop.time() + timeout
        while self._pending and self.loop.time() < end:
            await asyncio.sleep(0.01)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        conn, self._conn, self._ready = self._conn, None, False
        if conn is not None and conn.transport is not None:
            conn.transport.close()


def _store_directly(payloads: list[bytes]) -> None:
    """The fallback, in a worker thread: never raises (the requests are answered anyway)."""
    try:
        store_directly([json.loads(p) for p in payloads])
    except Exception:
        log.exception("could not store %d events directly nor spool them", len(payloads))
