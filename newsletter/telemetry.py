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

import datetime as dt
import hmac
import ipaddress
import logging
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .core import clock

__all__ = [
    "CLAIM_LAG",
    "CONTENT_TYPE",
    "DELIVERIES",
    "EVENTS_INGESTED",
    "IMPORT_ROWS",
    "LEASE_EXPIRIES",
    "REGISTRY",
    "WECHAT_CALLS",
    "LedgerCollector",
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
    "newsletter_deliveries", "Deliveries finished by this process, by outcome and relay.",
    ["outcome", "relay"], registry=REGISTRY,
)
LEASE_EXPIRIES = Counter(
    "newsletter_lease_expiries",
    "Deliveries taken over after another worker's lease ran out (sent again: at risk).",
    registry=REGISTRY,
)
CLAIM_LAG = Histogram(
    "newsletter_claim_lag_seconds", "From a delivery being due to a worker claiming it.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600), registry=REGISTRY,
)
WECHAT_CALLS = Counter(
    "newsletter_wechat_api_calls", "WeChat API calls by endpoint and errcode (0: ok).",
    ["endpoint", "errcode"], registry=REGISTRY,
)
EVENTS_INGESTED = Counter(
    "newsletter_events_ingested", "Open and click events written by this ingester.",
    registry=REGISTRY,
)
IMPORT_ROWS = Counter(
    "newsletter_import_rows", "Subscriber import rows processed, by result.", ["result"],
    registry=REGISTRY,
)


class LedgerCollector(Collector):
    """The fleet's state, read from the database (and Redis) at each scrape."""

    def collect(self) -> Iterator[Metric]:
        from sqlalchemy import func, select

        from .config import get_settings
        from .db import session_scope
        from .delivery.sends import LIVE
        from .models import Delivery, Send, Suppression

        errors = 0
        now = clock.now()
        try:
            with session_scope() as s:
                sends = GaugeMetricFamily("newsletter_sends", "Sends per state.", labels=["state"])
                for state, n in s.execute(select(Send.state, func.count()).group_by(Send.state)):
                    sends.add_metric([state], n)
                yield sends
                live = select(Send.id).where(Send.state.in_(LIVE)).scalar_subquery()
                queue = GaugeMetricFamily("newsletter_queue",
                                          "Deliveries of live sends per state.", labels=["state"])
                for state, n in s.execute(select(Delivery.state, func.count())
                                          .where(Delivery.send_id.in_(live))
                                          .group_by(Delivery.state)):
                    queue.add_metric([state], n)
                yield queue
                yield GaugeMetricFamily(
                    "newsletter_queue_depth", "Deliveries of live sends still to go "
                    "(queued + deferred).",
                    value=s.scalar(select(func.count()).where(
                        Delivery.send_id.in_(live), Delivery.state.in_(("queued", "deferred"))
                    )) or 0)
                yield GaugeMetricFamily(
                    "newsletter_deferrals", "Deliveries of live sends waiting for a retry.",
                    value=s.scalar(select(func.count()).where(
                        Delivery.send_id.in_(live), Delivery.state == "deferred")) or 0)
                yield GaugeMetricFamily(
                    "newsletter_at_risk", "Possible duplicates in live sends (counted).",
                    value=s.scalar(select(func.count()).where(
                        Delivery.send_id.in_(live), Delivery.at_risk.is_(True))) or 0)
                yield GaugeMetricFamily(
                    "newsletter_sends_auto_paused", "Sends paused because no relay works.",
                    value=s.scalar(select(func.count()).where(
                        Send.auto_paused_at.is_not(None))) or 0)
                yield GaugeMetricFamily(
                    "newsletter_send_rate", "Messages sent in the last minute, per second.",
                    value=(s.scalar(select(func.count()).where(
                        Delivery.send_id.in_(live), Delivery.state == "sent",
                        Delivery.sent_at >= now - dt.timedelta(seconds=60))) or 0) / 60)
                supp = GaugeMetricFamily(
                    "newsletter_suppressions", "Suppressed addresses by reason (bounce, "
                    "complaint, unsubscribe …).", labels=["reason"])
                for reason, n in s.execute(select(Suppression.reason, func.count())
                                           .group_by(Suppression.reason)):
                    supp.add_metric([str(reason)], n)
                yield supp
                bounced = GaugeMetricFamily(
                    "newsletter_live_bounces", "Bounced deliveries of live sends.")
                bounced.add_metric([], s.scalar(select(func.count()).where(
                    Delivery.send_id.in_(live), Delivery.state == "bounced")) or 0)
                yield bounced
                yield from self._wechat(s)
        except Exception:  # a scrape never fails: it says what it could not read
            log.exception("metrics: the database could not be read")
            errors += 1
        cfg = get_settings()
        if cfg.redis_url:
            try:
                yield from self._stream(cfg)
            except Exception:
                log.exception("metrics: Redis could not be read")
                errors += 1
        yield GaugeMetricFamily("newsletter_scrape_errors",
                                "Parts of this scrape that could not be read.", value=errors)

    @staticmethod
    def _wechat(s: Any) -> Iterator[Metric]:
        from sqlalchemy import func, select

        from .wechat.models import WeChatPublication

        fam = GaugeMetricFamily("newsletter_wechat_publications",
                                "WeChat channel steps per state.", labels=["state"])
        for state, n in s.execute(select(WeChatPublication.state, func.count())
                                  .group_by(WeChatPublication.state)):
            fam.add_metric([state], n)
        yield fam

    @staticmethod
    def _stream(cfg: Any) -> Iterator[Metric]:
        from .redisconn import redis_client
        from .tracking.events import GROUP, STREAM

        r = redis_client()
        key = cfg.redis_prefix + STREAM
        yield GaugeMetricFamily("newsletter_events_stream_length", "Events in the stream.",
                                value=int(r.xlen(key)))
        pending = 0
        for g in r.xinfo_groups(key) if r.exists(key) else []:
            if str(g.get("name")) in (GROUP, GROUP.encode()):
                pending = int(g.get("pending", 0)) + int(g.get("lag") or 0)
        yield GaugeMetricFamily("newsletter_ingest_lag",
                                "Events read or waiting and not yet acknowledged.", value=pending)


_ledger_lock = threading.Lock()
_ledger_added = False


def render(with_ledger: bool = False) -> bytes:
    """This process's metrics (and the ledger's, in the web process). A Celery worker
    runs its tasks in child processes: there ``PROMETHEUS_MULTIPROC_DIR`` is set (by
    ``newsletter worker``) and the children's counters are summed from that folder."""
    global _ledger_added
    if with_ledger:
        with _ledger_lock:
            if not _ledger_added:
                REGISTRY.register(LedgerCollector())
                _ledger_added = True
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def token_ok(header: str) -> bool:
    from .config import get_settings

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
    from .config import get_settings

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

    server = ThreadingHTTPServer((cfg.metrics_host, cfg.metrics_port + offset), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name=f"metrics-{name}").start()
    log.info("%s: metrics and health on %s:%d", name, cfg.metrics_host, cfg.metrics_port + offset)
    return server


def database_ready() -> bool:
    from sqlalchemy import text

    from .db import engine

    with engine().connect() as conn:
        conn.execute(text("SELECT 1"))
    return True


def broker_ready() -> bool:
    from .config import get_settings

    cfg = get_settings()
    if not cfg.broker_url.startswith("redis"):
        return True
    import redis

    client = redis.Redis.from_url(cfg.broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    finally:
        client.close()
