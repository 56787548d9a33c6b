"""The pixel server (`newsletter tracking serve-pixel`): bytes, keep-alive, pipelining, outages.

Real sockets, real Redis and PostgreSQL.  Most tests run the server's worker
in a thread of the test process (so the test's settings apply); one starts the
real command with two worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from newsletter.core import clock
from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.core.redis import redis_client
from newsletter.core.safety.signing import delivery_token
from newsletter.models import Event
from newsletter.tracking import pixelhttp, pixelprocs
from newsletter.tracking.classify import network_tag
from newsletter.tracking.ingester import consume
from newsletter.tracking.intake import STREAM, _ip_hash, replay_spool
from newsletter.web.public import PIXEL
from tests.tracking.helpers import BROWSER, sent_send

ROOT = Path(__file__).resolve().parents[2]
DEAD_REDIS = "redis://127.0.0.1:1/0"


def _count() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def _xlen(settings: Settings) -> int:
    return int(redis_client().xlen(settings.redis_prefix + STREAM))


@contextlib.contextmanager
def serve(**kwargs: Any) -> Iterator[int]:
    """One pixel-server worker in a thread (uvloop), on a free port; stopped gracefully."""
    sock = pixelprocs._listen("127.0.0.1", 0, reuse_port=False)
    port = sock.getsockname()[1]
    box: dict[str, Any] = {}
    started = threading.Event()

    def run() -> None:
        loop = pixelprocs._new_loop()
        asyncio.set_event_loop(loop)
        box["loop"], box["stop"] = loop, asyncio.Event()
        started.set()
        try:
            loop.run_until_complete(pixelprocs.run_worker(sock, stop=box["stop"], **kwargs))
        except BaseException as exc:  # surfaced by the test below
            box["error"] = exc
        finally:
            loop.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    started.wait(10)
    try:
        yield port
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        t.join(30)
        assert not t.is_alive(), "the server did not stop"
        assert "error" not in box, box.get("error")


@pytest.fixture
def redis_settings(pg_settings: Settings, redis_url: str) -> Iterator[Settings]:
    s = pg_settings.model_copy(update={"redis_url": redis_url})
    reset_settings(s)
    yield s
    redis_client().delete(s.redis_prefix + STREAM)


def _get(port: int, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers={"User-Agent": BROWSER, **(headers or {})})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def _raw(port: int, data: bytes, *, until_closed: bool = True, expect: int = 0) -> bytes:
    """Send raw bytes; read until the server closes (or ``expect`` bytes arrived)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while until_closed or len(out) < expect:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def _responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a byte stream of HTTP/1.1 responses (each with Content-Length)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


# -- answers ------------------------------------------------------------------------------


def test_pixel_bytes_and_headers_then_the_events_are_ingested(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(3)
    with serve() as port:
        for d in ids["deliveries"]:
            status, headers, body = _get(port, f"/o/{delivery_token(d)}.gif")
            assert status == 200 and body == PIXEL == pixelhttp.PIXEL and len(body) == 43
            assert headers["content-type"] == "image/gif"
            assert headers["content-length"] == "43"
            assert headers["cache-control"] == "no-store, no-cache, must-revalidate, max-age=0"
            assert headers["pragma"] == "no-cache" and headers["expires"] == "0"
            assert headers["date"].endswith(" GMT")
        assert _count() == 0  # answered with no database access: the events are in the stream
        assert _xlen(redis_settings) == 3
    assert consume(block_ms=100, max_batches=3) == 3
    with session_scope() as s:
        rows = list(s.scalars(select(Event).order_by(Event.delivery_id)))
    assert [r.delivery_id for r in rows] == ids["deliveries"]
    assert {r.kind for r in rows} == {"open"} and {r.cls for r in rows} == {"human"}
    assert {r.user_agent for r in rows} == {BROWSER}
    assert {r.ip_hash for r in rows} == {_ip_hash("127.0.0.1")}  # hashed, never the address
    for r in rows:  # the time the server saw the request, to the microsecond, in UTC
        age = clock.now() - r.occurred_at.replace(tzinfo=r.occurred_at.tzinfo or dt.UTC)
        assert dt.timedelta(0) <= age < dt.timedelta(minutes=5)


def test_keep_alive_serves_many_requests_on_one_connection(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(2)
    tokens = [delivery_token(d) for d in ids["deliveries"]]
    with serve() as port:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.connect()
        sock = c.sock
        for i in range(10):
            c.request("GET", f"/o/{tokens[i % 2]}.gif", headers={"User-Agent": BROWSER})
            r = c.getresponse()
            assert r.status == 200 and r.read() == PIXEL
            assert r.getheader("connection") == "keep-alive"
            assert c.sock is sock  # the same connection throughout
        c.close()
        assert _xlen(redis_settings) == 10


def test_pipelined_requests_are_answered_in_order(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(1)
    tok = delivery_token(ids["deliveries"][0])
    req = "GET {} HTTP/1.1\r\nHost: news.example.org\r\nUser-Agent: " + BROWSER + "\r\n{}\r\n"
    data = "".join([
        req.format(f"/o/{tok}.gif", ""),               # recorded: waits for Redis
        req.format("/o/d1.AAAAAAAAAAAAAAAAAAAAAA.gif", ""),  # forged: ready at once
        req.format("/nowhere", ""),                    # 404, ready at once
        req.format(f"/o/{tok}.gif?utm=1", ""),         # recorded (query ignored)
        req.format("/healthz", "Connection: close\r\n"),
        req.format(f"/o/{tok}.gif", ""),               # after "close": never answered
    ]).encode()  # fmt: skip
    with serve() as port:
        answers = _responses(_raw(port, data))
        assert [a[0] for a in answers] == [200, 200, 404, 200, 200]
        assert answers[0][2] == answers[1][2] == answers[3][2] == PIXEL
        assert json.loads(answers[2][2]) == {"detail": "Not Found"}
        assert json.loads(answers[4][2]) == {"status": "ok"}
        assert answers[4][1]["connection"] == "close"
        assert _xlen(redis_settings) == 2


def test_a_long_pipeline_is_answered_completely(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(1)
    tok = delivery_token(ids["deliveries"][0])
    req = f"GET /o/{tok}.gif HTTP/1.1\r\nHost: x\r\nUser-Agent: {BROWSER}\r\n\r\n".encode()
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with serve() as port:  # more than a connection may queue: reading pauses, then resumes
        answers = _responses(_raw(port, req * 300 + last))
        assert len(answers) == 301 and all(a[:1] == (200,) for a in answers)
        assert all(a[2] == PIXEL for a in answers[:300])
        assert _xlen(redis_settings) == 300
        # An Upgrade request is answered as plain HTTP, then the connection closes.
        upgrade = _raw(port, f"GET /o/{tok}.gif HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n".encode())  # fmt: skip
        assert upgrade.startswith(b"HTTP/1.1 200 OK") and upgrade.endswith(PIXEL)


def test_forged_and_malformed_tokens_record_nothing(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(1)
    tok = delivery_token(ids["deliveries"][0])
    forged = tok[:-2] + ("AA" if not tok.endswith("AA") else "BB")
    other_kind = "u" + tok[1:]
    with serve() as port:
        for path in (f"/o/{forged}.gif", "/o/x.gif", f"/o/{other_kind}.gif", "/o/d%C3%A9.x.gif",
                     f"/o/{tok}x.gif", f"/o/{tok[:-1]}.gif", "/o/d1-2.AAAAAAAAAAAAAAAA.gif"):  # fmt: skip
            status, _h, body = _get(port, path)
            assert status == 200 and body == PIXEL, path
        assert _xlen(redis_settings) == 0
        _get(port, f"/o/{tok}.gif")  # the genuine one, for contrast
        assert _xlen(redis_settings) == 1
    assert consume(block_ms=100, max_batches=2) == 1 and _count() == 1


def test_percent_encoded_token_is_the_same_token(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(1)
    tok = delivery_token(ids["deliveries"][0])
    encoded = "".join(f"%{ord(ch):02X}" for ch in tok)
    with serve() as port:
        assert _get(port, f"/o/{encoded}.gif")[0] == 200
        assert _xlen(redis_settings) == 1


def test_methods_paths_and_malformed_requests(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(1)
    tok = delivery_token(ids["deliveries"][0])
    with serve() as port:
        status, headers, _body = _get(port, f"/o/{tok}.gif", method="POST")
        assert status == 405 and headers["allow"] == "GET, HEAD"
        assert _get(port, f"/o/{tok}.gif", method="DELETE")[0] == 405
        assert _get(port, "/healthz", method="POST")[0] == 405
        assert _get(port, "/")[0] == 404
        assert _get(port, "/c/x/1")[0] == 404  # clicks are the web app's
        assert _get(port, f"/o/a/{tok}.gif")[0] == 404  # a token has no slash
        assert _get(port, "/o/.gif")[0] == 404
        assert _xlen(redis_settings) == 0
        # HEAD: the GIF's headers, no body; records like the web app's route.
        head = _raw(port, f"HEAD /o/{tok}.gif HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    .encode())  # fmt: skip
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 43\r\n" in head
        assert head.endswith(b"\r\n\r\n")
        assert _xlen(redis_settings) == 1
        # Garbage, an absurd target, absurd headers: an error, then the connection closes.
        bad = _raw(port, b"NOT HTTP AT ALL\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in bad
        long_target = _raw(port, b"GET /o/" + b"a" * 9000 + b".gif HTTP/1.1\r\n\r\n")
        assert long_target.startswith(b"HTTP/1.1 414 ")
        huge = b"GET /healthz HTTP/1.1\r\n" + b"X-Pad: " + b"p" * 70000 + b"\r\n\r\n"
        assert _raw(port, huge).startswith(b"HTTP/1.1 431 ")
        # HTTP/1.0 without keep-alive: answered, then closed.
        old = _raw(port, b"GET /healthz HTTP/1.0\r\n\r\n")
        assert old.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in old
        # Absolute-form target (what a client talking to a proxy sends).
        absolute = _raw(port, f"GET http://news.example.org/o/{tok}.gif HTTP/1.1\r\n"
                              "Host: news.example.org\r\nConnection: close\r\n\r\n".encode())  # fmt: skip
        assert absolute.startswith(b"HTTP/1.1 200 OK") and absolute.endswith(PIXEL)
        assert _xlen(redis_settings) == 2


def test_many_concurrent_connections_lose_nothing(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(4)
    tokens = [delivery_token(d) for d in ids["deliveries"]]
    failures: list[str] = []
    with serve() as port:

        def client(n: int) -> None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            try:
                for i in range(25):
                    c.request(
                        "GET", f"/o/{tokens[(n + i) % 4]}.gif", headers={"User-Agent": BROWSER}
                    )
                    r = c.getresponse()
                    if r.status != 200 or r.read() != PIXEL:
                        failures.append(f"{n}/{i}: {r.status}")
            finally:
                c.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures
        assert _xlen(redis_settings) == 400
    handled = 0
    while handled < 400:
        got = consume(block_ms=100, max_batches=5, count=200)
        assert got, "the stream ran dry early"
        handled += got
    assert _count() == 400


def test_client_address_behind_a_trusted_proxy(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(2)
    apple = {"X-Forwarded-For": "17.58.0.1, 10.1.2.3"}  # an MPP prefetch, via two proxies
    with serve(forwarded_allow_ips="127.0.0.1, 10.0.0.0/8") as port:
        assert _get(port, f"/o/{delivery_token(ids['deliveries'][0])}.gif", headers=apple)[0] == 200
    with serve(forwarded_allow_ips="192.0.2.1") as port:  # the peer is not trusted: ignored
        assert _get(port, f"/o/{delivery_token(ids['deliveries'][1])}.gif", headers=apple)[0] == 200
    entries = [json.loads(f[b"e"]) for _id, f in
               redis_client().xrange(redis_settings.redis_prefix + STREAM)]  # fmt: skip
    assert [(e["net"], e["ip"]) for e in entries] == [
        (network_tag("17.58.0.1"), _ip_hash("17.58.0.1")),
        ("", _ip_hash("127.0.0.1")),
    ]
    assert entries[0]["net"] == "apple"
    consume(block_ms=100, max_batches=2)
    with session_scope() as s:
        cls = {d: c for d, c in s.execute(select(Event.delivery_id, Event.cls))}
    assert cls == {ids["deliveries"][0]: "machine", ids["deliveries"][1]: "human"}


# -- outages ------------------------------------------------------------------------------


def test_redis_down_answers_and_stores_directly(pg_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(3)
    reset_settings(pg_settings.model_copy(update={"redis_url": DEAD_REDIS}))
    with serve() as port:
        for d in ids["deliveries"]:
            assert _get(port, f"/o/{delivery_token(d)}.gif")[2] == PIXEL
        assert _count() == 3  # each answered after its direct insert


def test_redis_refusing_the_write_falls_back(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(2)
    r = redis_client()
    r.set(redis_settings.redis_prefix + STREAM, "not a stream")  # every XADD now fails: WRONGTYPE
    with serve() as port:
        for d in ids["deliveries"]:
            assert _get(port, f"/o/{delivery_token(d)}.gif")[0] == 200
    assert _count() == 2


def test_redis_and_database_down_spools_then_replays(pg_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(2)
    dead = pg_settings.model_copy(update={
        "redis_url": DEAD_REDIS,
        "database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none",
    })  # fmt: skip
    reset_settings(dead)
    with serve() as port:
        for d in ids["deliveries"]:
            assert _get(port, f"/o/{delivery_token(d)}.gif")[2] == PIXEL
    spooled = list((dead.var_dir / "spool").glob("*.jsonl"))
    assert spooled and "127.0.0.1" not in spooled[0].read_text()  # only the hash
    reset_settings(pg_settings)
    assert replay_spool() == 2 and _count() == 2


class _Proxy:
    """A TCP relay to Redis that the test can cut (connection lost) or freeze (no answers)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frozen = False
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                if not self.frozen:
                    b.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(): new connections refused
        self.listener.close()
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def test_redis_connection_lost_mid_run_loses_no_open(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(6)
    proxy = _Proxy(("127.0.0.1", 6379))
    reset_settings(
        redis_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{proxy.port}/0"})
    )
    try:
        with serve() as port:
            for d in ids["deliveries"][:3]:
                assert _get(port, f"/o/{delivery_token(d)}.gif")[0] == 200
            proxy.cut()
            for d in ids["deliveries"][3:]:
                assert _get(port, f"/o/{delivery_token(d)}.gif")[0] == 200
    finally:
        proxy.cut()
    reset_settings(redis_settings)
    assert _xlen(redis_settings) == 3  # before the cut: in the stream
    assert _count() == 3  # after it: stored directly
    assert consume(block_ms=100, max_batches=2) == 3
    assert _count() == 6


def test_redis_not_answering_times_out_and_loses_no_open(redis_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(2)
    proxy = _Proxy(("127.0.0.1", 6379))
    proxy.frozen = True  # connects, but nothing gets through
    reset_settings(
        redis_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{proxy.port}/0"})
    )
    try:
        with serve(redis_timeout=0.5) as port:
            for d in ids["deliveries"]:
                assert _get(port, f"/o/{delivery_token(d)}.gif")[0] == 200
    finally:
        proxy.cut()
    reset_settings(redis_settings)
    assert _count() == 2


# -- the command ------------------------------------------------------------------------------


def test_serve_pixel_command_with_two_workers(redis_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(4)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ,
        NEWSLETTER_DATABASE_URL=redis_settings.database_url,
        NEWSLETTER_REDIS_URL=redis_settings.redis_url,
        NEWSLETTER_REDIS_PREFIX=redis_settings.redis_prefix,
        NEWSLETTER_SECRET_KEY=redis_settings.secret_key.get_secret_value(),
        NEWSLETTER_VAR_DIR=str(tmp_path / "var"),
    )
    cmd = [str(Path(sys.executable).with_name("newsletter")), "tracking", "serve-pixel",
           "--port", str(port), "--workers", "2", "--log-level", "warning"]  # fmt: skip
    p = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        for _round in range(5):  # fresh connections: both workers get some
            for d in ids["deliveries"]:
                assert _get(port, f"/o/{delivery_token(d)}.gif")[2] == PIXEL
        assert _get(port, "/healthz")[0] == 200
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        assert p.wait(30) == 0
    assert _xlen(redis_settings) == 20
    assert consume(block_ms=100, max_batches=3) == 20 and _count() == 20


def test_metrics_and_readiness_of_the_pixel_server(redis_settings) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client.parser import text_string_to_metric_families
    from pydantic import SecretStr

    ids = sent_send(1)
    tok = delivery_token(ids["deliveries"][0])
    reset_settings(
        redis_settings.model_copy(update={"metrics_token": SecretStr("pixel-metrics-0123456789")})
    )
    open_req = f"GET /o/{tok}.gif HTTP/1.1\r\nHost: x\r\nUser-Agent: {BROWSER}\r\n\r\n"
    with serve() as port:
        _responses(
            _raw(
                port,
                (
                    open_req + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                ).encode(),
            )
        )
        ready = _responses(
            _raw(port, b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        )
        assert ready[0][0] == 200 and ready[0][2] == b"ready\n"
        denied = _responses(
            _raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        )
        assert denied[0][0] == 401
        answers = _responses(
            _raw(
                port,
                (
                    b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: "
                    b"Bearer pixel-metrics-0123456789\r\nConnection: close\r\n\r\n"
                ),
            )
        )
    status, headers, body = answers[0]
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    events = families["newsletter_pixel_events"]
    assert sum(s.value for s in events.samples) >= 1, body.decode()[-800:]
