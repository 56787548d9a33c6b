"""The pixel server: a lean HTTP/1.1 server for ``GET /o/{token}.gif`` and nothing else.

The open pixel is by far the most frequent request the product serves (every
message opened, every image prefetch by Apple's and Gmail's proxies), and it
needs none of a web framework: verify the token, hand the event to Redis,
answer 43 bytes.  ``newsletter tracking serve-pixel`` runs this server; the
reverse proxy in front of the product routes ``/o/`` to it and everything else
to the web app (docs/operations.md).  The web app keeps its own ``/o/`` route
(:mod:`newsletter.web.public`, behind the fast path of :mod:`.pixel`), so a
deployment without the pixel server loses nothing but speed.

What it does, per connection (an :class:`asyncio.Protocol` on uvloop, requests
parsed by httptools, the same parser uvicorn uses):

* HTTP/1.1 keep-alive and pipelining: responses leave in request order, even
  when a later request (a forged token, a 404) is answered before an earlier
  one's event is stored.  A client that pipelines without reading is paused.
* ``GET``/``HEAD /o/{token}.gif``: the same bytes and headers as the web app
  (``HEAD`` records too, like the web app's route).  A genuine token's event
  is built by :func:`~newsletter.tracking.intake.open_payload` (HMAC verified,
  IP classified and hashed: the address never leaves the process) and added to
  the :class:`~newsletter.tracking.streamwriter.EventWriter`, which
  group-commits ``XADD`` s; the response is written once the event is in Redis
  (or, Redis failing, stored directly or spooled).  A forged token is answered
  the same way at once and records nothing.
* ``/healthz``: ``{"status": "ok"}``.  Other methods on those paths: 405; any
  other path: 404; a malformed request: 400 and the connection is closed.
* The client address is the peer's, or, when the peer is a trusted proxy
  (``--forwarded-allow-ips``, default ``127.0.0.1`` as for uvicorn), the
  nearest untrusted address of ``X-Forwarded-For``.
* Limits: 8 KiB of request target, 64 KiB of headers (400/414/431), a request
  must arrive within 30 s and an idle connection is closed after 75 s.

The responses and the trusted-proxy rule are in :mod:`.pixelhttp`; the processes
(``--workers N``, graceful stop) in :mod:`.pixelprocs`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from typing import Any, cast
from urllib.parse import unquote

import httptools

from newsletter.core.config import get_settings
from newsletter.tracking.intake import open_payload
from newsletter.tracking.pixelhttp import Reject, Responses, Trusted
from newsletter.tracking.streamwriter import EventWriter

__all__ = ["PixelServer"]

log = logging.getLogger(__name__)

MAX_TARGET = 8 * 1024
MAX_HEADERS = 64 * 1024
REQUEST_TIMEOUT = 30.0
KEEPALIVE_TIMEOUT = 75.0
MAX_QUEUED = 64  # responses waiting on one connection before it stops reading


class PixelServer:
    """What the connections of one worker process share."""

    def __init__(self, writer: EventWriter, *, forwarded_allow_ips: str = "127.0.0.1") -> None:
        self.writer = writer
        self.loop = writer.loop
        self.trusted = Trusted(forwarded_allow_ips)
        self.responses = Responses()
        self.connections: set[_Connection] = set()
        self.now = self.loop.time()  # a coarse clock, advanced by the ticker
        self._ticker: asyncio.TimerHandle | None = None
        self._sweep_at = self.now + 1.0
        self._tick()

    def protocol(self) -> _Connection:
        return _Connection(self)

    def _tick(self) -> None:
        self.now = self.loop.time()
        self.responses.refresh()
        if self.now >= self._sweep_at:
            self._sweep_at = self.now + 1.0
            for conn in list(self.connections):
                conn.check_timeouts(self.now)
        self._ticker = self.loop.call_at(self.now + 0.25, self._tick)

    async def close(self, timeout: float = 10.0) -> None:
        """Stop (after the listening sockets are closed): drain, then close every connection."""
        for conn in list(self.connections):
            conn.stop_reading()  # requests already read are answered; no new ones
        await self.writer.close(timeout)
        end = self.loop.time() + timeout
        while any(c.queue for c in self.connections) and self.loop.time() < end:
            await asyncio.sleep(0.01)
        if self._ticker is not None:
            self._ticker.cancel()
        for conn in list(self.connections):
            conn.close()


class _Connection(asyncio.Protocol):
    __slots__ = (
        "auth", "began", "forwarded", "headers_size", "keep_alive", "last", "parser", "peer",
        "queue", "reading_paused", "server", "transport", "ua", "url", "writing_paused",
    )  # fmt: skip

    def __init__(self, server: PixelServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        # Responses not written yet, in request order: [batch or None, bytes].
        self.queue: collections.deque[tuple[Any, bytes]] = collections.deque()
        self.url = b""
        self.ua = b""
        self.forwarded: bytes | None = None
        self.auth = b""
        self.headers_size = 0
        self.keep_alive = True
        self.began = 0.0
        self.last = server.now
        self.peer = ""
        self.reading_paused = False
        self.writing_paused = False

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else ""
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server.connections.discard(self)
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        self.last = self.server.now
        if not self.keep_alive:
            return  # after "Connection: close" or an error nothing more is read
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The request was answered; no protocol switch is offered: finish and close.
            self.keep_alive = False
            self._close_when_done()
        except httptools.HttpParserCallbackError as exc:
            if not self.keep_alive:
                return  # bytes after a "Connection: close" request: ignored
            cause = exc.__context__
            if isinstance(cause, Reject):
                self._fail(cause.status)
            else:
                log.error("pixel server error", exc_info=cause)
                self._fail(b"500 Internal Server Error")
        except httptools.HttpParserError:
            if self.keep_alive:  # (else: bytes after a "Connection: close" request)
                self._fail(b"400 Bad Request")

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._set_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._set_reading()

    # -- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.ua = b""
        self.forwarded = None
        self.auth = b""
        self.headers_size = 0
        self.began = self.server.now or 1.0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_TARGET:
            raise Reject(b"414 URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers_size += len(name) + len(value) + 4
        if self.headers_size > MAX_HEADERS:
            raise Reject(b"431 Request Header Fields Too Large")
        name = name.lower()
        if name == b"user-agent":
            if not self.ua:
                self.ua = value
        elif name == b"x-forwarded-for":
            self.forwarded = value if self.forwarded is None else self.forwarded + b"," + value
        elif name == b"authorization":
            self.auth = value

    def on_message_complete(self) -> None:
        self.began = 0.0
        if not self.keep_alive:
            return  # pipelined after a "Connection: close" request: ignored
        path = self.url
        if path[:1] != b"/":  # absolute-form (a proxy request), authority-form or "*"
            try:
                path = httptools.parse_url(path).path or b""
            except httptools.HttpParserInvalidURLError:
                raise Reject(b"400 Bad Request") from None
        parser = self.parser
        keep = parser.should_keep_alive()
        if not keep:
            self.keep_alive = False
        method = parser.get_method()
        q = path.find(b"?")
        if q >= 0:
            path = path[:q]
        responses = self.server.responses
        if path[:3] == b"/o/" and path[-4:] == b".gif" and len(path) > 7 and b"/" not in path[3:]:
            head = method == b"HEAD"
            if method != b"GET" and not head:
                self._answer(responses.other[(405, keep, False)])
                return
            token = path[3:-4].decode("latin-1")
            if "%" in token:
                token = unquote(path[3:-4].decode("ascii", "replace"))
            ip = self.peer
            if self.forwarded is not None:
                ip = self.server.trusted.client(ip, self.forwarded)
            payload = open_payload(token, self.ua.decode("latin-1"), ip)
            body = (responses.gif_head if head else responses.gif)[keep]
            if payload is None:
                self._answer(body)
                return
            batch = self.server.writer.add(payload)
            batch.waiters.append(self)
            self.queue.append((batch, body))
            if len(self.queue) > MAX_QUEUED:
                self._set_reading()
            return
        if path in (b"/metrics", b"/readyz") and method == b"GET":
            self._answer(self._ops_page(path, keep))
            return
        code = 200 if path == b"/healthz" else 404
        if code == 200 and method not in (b"GET", b"HEAD"):
            code = 405
        self._answer(responses.other[(code, keep, method == b"HEAD")])

    def _ops_page(self, path: bytes, keep: bool) -> bytes:
        """``/metrics`` (bearer token when one is set) and ``/readyz`` (the event stream
        answers). Rare requests: built on the spot."""
        from newsletter.core.telemetry import CONTENT_TYPE, render, token_ok

        dyn = self.server.responses.dynamic
        if path == b"/metrics":
            if not get_settings().metrics_token.get_secret_value():
                # This port faces the internet: no token, no metrics (as on the web app).
                return dyn(b"404 Not Found", b"text/plain", b"not found\n", keep)
            if not token_ok(self.auth.decode("latin-1")):
                return dyn(
                    b"401 Unauthorized", b"text/plain", b"metrics need the bearer token\n", keep
                )
            stats = self.server.writer.stats
            pid = os.getpid()
            extra = "".join(
                f"# TYPE newsletter_pixel_{k}_total counter\nnewsletter_pixel_{k}_total"
                f'{{process="{pid}"}} {v}\n'
                for k, v in sorted(stats.items())
            )
            return dyn(b"200 OK", CONTENT_TYPE.encode(), render() + extra.encode(), keep)
        try:
            ok = bool(self.server.writer.ready())
        except Exception:
            ok = False
        return dyn(
            b"200 OK" if ok else b"503 Service Unavailable",
            b"text/plain",
            b"ready\n" if ok else b"not ready\n",
            keep,
        )

    # -- responses -----------------------------------------------------------------------

    def _answer(self, data: bytes) -> None:
        if self.queue:
            self.queue.append((None, data))
        elif self.transport is not None:
            self.transport.write(data)
            if not self.keep_alive:
                self.transport.close()
                self.transport = None

    def released(self) -> None:
        """A batch this connection waits on is safe: write what may go now, in order."""
        queue = self.queue
        if self.transport is None:
            return
        out = []
        while queue:
            batch = queue[0][0]
            if batch is not None and not batch.released:
                break
            out.append(queue.popleft()[1])
        if not out:
            return
        self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if not queue:
            self._close_when_done()
        if self.reading_paused:
            self._set_reading()

    def _close_when_done(self) -> None:
        if not self.keep_alive and not self.queue and self.transport is not None:
            self.transport.close()
            self.transport = None

    def _fail(self, status: bytes) -> None:
        """Answer an error after what is queued, then close: the stream cannot be trusted."""
        self.keep_alive = False
        self.parser = httptools.HttpRequestParser(self)  # never feed the broken one again
        if self.transport is not None:
            self.transport.pause_reading()
        self._answer(Responses.error(status))

    def _set_reading(self) -> None:
        if self.transport is None:
            return
        pause = self.writing_paused or len(self.queue) > MAX_QUEUED
        if pause and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        elif not pause and self.reading_paused and self.keep_alive:
            self.transport.resume_reading()
            self.reading_paused = False

    def check_timeouts(self, now: float) -> None:
        if self.began and now - self.began > REQUEST_TIMEOUT and not self.queue:
            self._fail(b"408 Request Timeout")
        elif not self.began and not self.queue and now - self.last > KEEPALIVE_TIMEOUT:
            self.close()

    def stop_reading(self) -> None:
        self.keep_alive = False
        if self.transport is not None and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        self._close_when_done()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
