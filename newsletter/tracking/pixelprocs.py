"""The pixel server's processes: ``--workers N`` forks N workers, each with its own
listening socket bound with ``SO_REUSEPORT`` (the kernel spreads connections evenly), and
restarts a worker that dies. ``SIGTERM``/``SIGINT`` stop them gracefully: stop accepting,
wait for the events in flight, close."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from newsletter.core.config import get_settings
from newsletter.tracking.intake import STREAM
from newsletter.tracking.pixelserver import PixelServer
from newsletter.tracking.streamwriter import EventWriter

__all__ = ["run_worker", "serve"]

log = logging.getLogger("newsletter.tracking.pixelserver")


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
