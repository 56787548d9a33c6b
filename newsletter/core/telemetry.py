"""Metrics and health for every process, in the formats ops already scrape.

Two kinds of numbers, kept apart so that no figure is counted twice in a fleet:

* **Process counters** (prometheus-client, this process only): deliveries by outcome
  and relay, lease expiries taken over, claim lag, WeChat API calls by errcode,
  events ingested, import rows. Each process exposes its own; Prometheus sums them.
* **Database figures** (read at scrape time from the ledger, by the web process
  only: :class:`LedgerCollector`): sends by state, the queue (queued + deferred),
  at-risk deliveries, auto-paused sends, the send rate of the last minute, bounces
  and complaints, WeChat channel steps, and the event stream's ingest lag.

Web and pixel serve ``/metrics``, ``/healthz`` (the process answers) and ``/readyz``
(it can reach what it needs) on their own port. Workers, beat and the ingester
serve the same three paths on ``NEWSLETTER_METRICS_PORT`` (+0 worker, +1 beat,
+2 ingester; off when 0) from a small thread (:func:`serve_process`). Every
endpoint that shows numbers needs ``Authorization: Bearer NEWSLETTER_METRICS_TOKEN``
when the token is set; ``/metrics`` on the web app and the pixel server (both face
the internet) is off without one, and the processes' own server answers it without
a token only to a scraper on the same machine (loopback).
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import logging
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.registry import Collector

from newsletter.core import clock

__all__ = [
    "CLAIM_LAG",
    "CONTENT_TYPE",
    "DELIVERIES",
    "EVENTS_INGESTED",
    "IMPORT_ROWS",
    "LEASE_EXPIRIES",
    "REGISTRY",
    "WECHAT_CALLS",
    "broker_ready",
    "database_ready",
    "render",
    "serve_process",
    "token_ok",
]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: This process's counters. The ledger collector is added by the web process.
REGISTRY = CollectorRegistry(auto_describe=True)

DELIVERIES = Counter(
    "newsletter_deliveries",
    "Deliveries finished by this process, by outcome and relay.",
    ["outcome", "relay"],
    registry=REGISTRY,
)
LEASE_EXPIRIES = Counter(
    "newsletter_lease_expiries",
    "Deliveries taken over after another worker's lease ran out (sent again: at risk).",
    registry=REGISTRY,
)
CLAIM_LAG = Histogram(
    "newsletter_claim_lag_seconds",
    "From a delivery being due to a worker claiming it.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
WECHAT_CALLS = Counter(
    "newsletter_wechat_api_calls",
    "WeChat API calls by endpoint and errcode (0: ok).",
    ["endpoint", "errcode"],
    registry=REGISTRY,
)
EVENTS_INGESTED = Counter(
    "newsletter_events_ingested",
    "Open and click events written by this ingester.",
    registry=REGISTRY,
)
IMPORT_ROWS = Counter(
    "newsletter_import_rows",
    "Subscriber import rows processed, by result.",
    ["result"],
    registry=REGISTRY,
)


_extra_lock = threading.Lock()
_extra: set[str] = set()


def render(extra: Collector | None = None) -> bytes:
    """This process's metrics, with ``extra`` registered once (the web process adds the
    ledger's, :mod:`newsletter.reports.metrics`). A Celery worker runs its tasks in child
    processes: there ``PROMETHEUS_MULTIPROC_DIR`` is set (by ``newsletter worker``) and
    the children's counters are summed from that folder."""
    if extra is not None:
        with _extra_lock:
            name = type(extra).__qualname__
            if name not in _extra:
                REGISTRY.register(extra)
                _extra.add(name)
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def token_ok(header: str) -> bool:
    from newsletter.core.config import get_settings

    token = get_settings().metrics_token.get_secret_value()
    return not token or hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


def _loopback(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool((mapped or addr).is_loopback)


def serve_process(name: str, offset: int, ready: Callable[[], bool]) -> ThreadingHTTPServer | None:
    """``/metrics``, ``/healthz`` and ``/readyz`` for a worker, beat or ingester, on
    ``metrics_host:metrics_port + offset`` in a daemon thread; None when off."""
    from newsletter.core.config import get_settings

    cfg = get_settings()
    if not cfg.metrics_port:
        return None
    started = clock.timestamp()
    cache: dict[str, tuple[float, bool]] = {}

    def is_ready() -> bool:
        at, ok = cache.get("r", (0.0, False))
        if clock.timestamp() - at > 5:
            try:
                ok = bool(ready())
            except Exception:
                ok = False
            cache["r"] = (clock.timestamp(), ok)
        return ok

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, f"ok {name} up {clock.timestamp() - started:.0f}s\n".encode())
            elif path == "/readyz":
                ok = is_ready()
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            elif path == "/metrics":
                # Without a token, only a scraper on this machine sees the figures.
                if not token_ok(self.headers.get("Authorization", "")) or (
                    not cfg.metrics_token.get_secret_value()
                    and not _loopback(self.client_address[0])
                ):
                    self._send(401, b"metrics need the bearer token\n")
                    return
                self._send(200, render(), CONTENT_TYPE)
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    want = cfg.metrics_port + offset
    try:
        server = ThreadingHTTPServer((cfg.metrics_host, want), Handler)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            log.error("%s: 指标服务未启动 / metrics not served on %s:%d: %s", name,
                      cfg.metrics_host, want, exc.strerror or exc)  # fmt: skip
            return None
        # Another process of the same kind on this host (two beats, two workers) has the
        # port: take a free one and say which, in one line.
        server = ThreadingHTTPServer((cfg.metrics_host, 0), Handler)
        log.warning(
            "%s: 指标端口 %d 已被占用，改用 %d / metrics port %d is in use (another %s on "
            "this host?): serving metrics and health on %s:%d instead",
            name, want, server.server_port, want, name, cfg.metrics_host, server.server_port,
        )  # fmt: skip
    else:
        log.info("%s: metrics and health on %s:%d", name, cfg.metrics_host, want)
    threading.Thread(target=server.serve_forever, daemon=True, name=f"metrics-{name}").start()
    return server


def database_ready() -> bool:
    from sqlalchemy import text

    from newsletter.core import queries
    from newsletter.core.db import engine

    with engine().connect() as conn:
        conn.execute(text(queries.PING))
    return True


def broker_ready() -> bool:
    from newsletter.core.config import get_settings

    cfg = get_settings()
    if not cfg.broker_url.startswith("redis"):
        return True
    import redis

    client = redis.Redis.from_url(cfg.broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    finally:
        client.close()
