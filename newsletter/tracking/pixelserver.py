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

Processes: ``--workers N`` forks N workers, each with its own listening socket
bound with ``SO_REUSEPORT`` (the kernel spreads connections evenly), and
restarts a worker that dies.  ``SIGTERM``/``SIGINT`` stop them gracefully:
stop accepting, wait for the events in flight, close.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import gc
import ipaddress
import logging
import os
import signal
import socket
import sys
import time
from email.utils import formatdate
from typing import Any, cast
from urllib.parse import unquote

import httptools

from newsletter.core import clock
from newsletter.core.config import get_settings
from newsletter.tracking.intake import STREAM, open_payload
from newsletter.tracking.streamwriter import EventWriter

__all__ = ["PixelServer", "serve"]

log = logging.getLogger(__name__)

#: The 43-byte transparent GIF (the same bytes as the web app's route).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
MAX_TARGET = 8 * 1024
MAX_HEADERS = 64 * 1024
REQUEST_TIMEOUT = 30.0
KEEPALIVE_TIMEOUT = 75.0
MAX_QUEUED = 64  # responses waiting on one connection before it stops reading

_GIF_HEADERS = (
    b"Content-Type: image/gif\r\nContent-Length: 43\r\n"
    b"Cache-Control: no-store, no-cache, must-revalidate, max-age=0\r\n"
    b"Pragma: no-cache\r\nExpires: 0\r\n"
)
_JSON = b"Content-Type: application/json\r\n"


class _Reject(Exception):
    """A request the server refuses before it is complete (status line text)."""

    def __init__(self, status: bytes) -> None:
        self.status = status


class _Responses:
    """Every response the server sends, prebuilt, with the Date header of the current second."""

    def __init__(self) -> None:
        self.second = -1
        self.refresh()

    def refresh(self) -> None:
        now = int(clock.timestamp())
        if now == self.second:
            return
        self.second = now
        date = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"

        def build(status: bytes, headers: bytes, body: bytes, head: bool = False) -> bytes:
            if not headers.startswith(b"Content-Type: image/gif"):
                headers += b"Content-Length: %d\r\n" % len(body)
            return (
                b"HTTP/1.1 " + status + b"\r\n" + date + headers + b"\r\n" + (b"" if head else body)
            )

        keep, close = b"Connection: keep-alive\r\n", b"Connection: close\r\n"
        not_found = (b"404 Not Found", _JSON, b'{"detail":"Not Found"}')
        not_allowed = (b"405 Method Not Allowed", _JSON + b"Allow: GET, HEAD\r\n",
                       b'{"detail":"Method Not Allowed"}')  # fmt: skip
        health = (b"200 OK", _JSON, b'{"status":"ok"}')
        self.gif = {True: build(b"200 OK", _GIF_HEADERS + keep, PIXEL),
                    False: build(b"200 OK", _GIF_HEADERS + close, PIXEL)}  # fmt: skip
        self.gif_head = {True: build(b"200 OK", _GIF_HEADERS + keep, PIXEL, head=True),
                         False: build(b"200 OK", _GIF_HEADERS + close, PIXEL, head=True)}  # fmt: skip
        self.other: dict[tuple[int, bool, bool], bytes] = {}
        for code, (status, headers, body) in ((404, not_found), (405, not_allowed), (200, health)):
            for keep_alive in (True, False):
                for head in (False, True):
                    hdrs = headers + (keep if keep_alive else close)
                    self.other[(code, keep_alive, head)] = build(status, hdrs, body, head)

    @staticmethod
    def dynamic(status: bytes, ctype: bytes, body: bytes, keep_alive: bool) -> bytes:
        """A response built now (metrics, readiness): never cached."""
        return (
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: "
            + ctype
            + b"\r\n"
            + b"Cache-Control: no-store\r\nContent-Length: %d\r\n" % len(body)
            + (b"Connection: keep-alive\r\n" if keep_alive else b"Connection: close\r\n")
            + b"\r\n"
            + body
        )

    @staticmethod
    def error(status: bytes) -> bytes:
        """A response that closes the connection (400, 414, 431, 500)."""
        body = b'{"detail":"' + status.split(b" ", 1)[1] + b'"}'
        return (b"HTTP/1.1 " + status + b"\r\n" + _JSON + b"Content-Length: %d\r\n" % len(body)
                + b"Connection: close\r\n\r\n" + body)  # fmt: skip


class _Trusted:
    """The proxies whose ``X-Forwarded-For`` is believed (addresses, networks or ``*``)."""

    def __init__(self, spec: str) -> None:
        items = [x.strip() for x in spec.split(",") if x.strip()]
        self.everyone = "*" in items
        self.hosts = {x for x in items if "/" not in x}
        self.networks = [ipaddress.ip_network(x, strict=False) for x in items if "/" in x]

    def __contains__(self, host: str) -> bool:
        if self.everyone or host in self.hosts:
            return True
        if not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in n for n in self.networks)

    def client(self, peer: str, forwarded: bytes | None) -> str:
        """The client address: uvicorn's rule (nearest untrusted hop of X-Forwarded-For)."""
        if forwarded is None or peer not in self:
            return peer
        hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            if hop not in self:
                return hop
        return hops[0] if hops else peer


class PixelServer:
    """What the connections of one worker process share."""

    def __init__(self, writer: EventWriter, *, forwarded_allow_ips: str = "127.0.0.1") -> None:
        self.writer = writer
        self.loop = writer.loop
        self.trusted = _Trusted(forwarded_allow_ips)
        self.responses = _Responses()
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
            if isinstance(cause, _Reject):
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
            raise _Reject(b"414 URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers_size += len(name) + len(value) + 4
        if self.headers_size > MAX_HEADERS:
            raise _Reject(b"431 Request Header Fields Too Large")
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
                raise _Reject(b"400 Bad Request") from None
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
        self._answer(_Responses.error(status))

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


# -- processes ----------------------------------------------------------------------------


def _listen(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def run_worker(
    sock: socket.socket,
    *,
    forwarded_allow_ips: str = "127.0.0.1",
    stop: asyncio.Event | None = None,
    redis_timeout: float = 2.0,
) -> None:
    """Serve on ``sock`` in the running loop until ``stop`` is set (or SIGTERM/SIGINT)."""
    loop = asyncio.get_running_loop()
    cfg = get_settings()
    writer = EventWriter(cfg.redis_url, cfg.redis_prefix + STREAM, timeout=redis_timeout)
    state = PixelServer(writer, forwarded_allow_ips=forwarded_allow_ips)
    server = await loop.create_server(state.protocol, sock=sock, backlog=1024)
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        await state.close()
        await server.wait_closed()


def _worker_main(sock: socket.socket, forwarded_allow_ips: str) -> None:
    gc.collect()
    gc.freeze()  # what the imports built never needs scanning again
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(run_worker(sock, forwarded_allow_ips=forwarded_allow_ips))


def serve(
    host: str, port: int, *, workers: int = 1, forwarded_allow_ips: str = "127.0.0.1"
) -> None:
    """Run the pixel server in the foreground (``newsletter tracking serve-pixel``)."""
    reuse_port = workers > 1 and hasattr(socket, "SO_REUSEPORT")
    if workers <= 1:
        sock = _listen(host, port, reuse_port=False)
        log.info("pixel server on %s:%d (1 process)", host, port)
        _worker_main(sock, forwarded_allow_ips)
        return
    shared = None if reuse_port else _listen(host, port, reuse_port=False)
    if reuse_port:  # fail here, not in every worker, if the port is taken
        _listen(host, port, reuse_port=True).close()
    log.info("pixel server on %s:%d (%d processes)", host, port, workers)
    children: dict[int, float] = {}
    stopping = False
    quick_deaths = 0

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                sock = shared or _listen(host, port, reuse_port=True)
                _worker_main(sock, forwarded_allow_ips)
            except BaseException:
                log.exception("pixel worker failed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = time.monotonic()

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        spawn()
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        started = children.pop(pid, None)
        if started is None or stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        log.error("pixel worker %d exited (%s); restarting it", pid, code)
        quick_deaths = quick_deaths + 1 if time.monotonic() - started < 5 else 0
        if quick_deaths > 3 * workers:
            log.error("pixel workers keep dying at start; giving up")
            stop(signal.SIGTERM, None)
            sys.exit(1)
        time.sleep(min(quick_deaths, 5) * 0.2)
        spawn()
