"""Metrics are for the operator's scraper: an outsider who reaches a port gets no figures.

The pixel server faces the internet (it serves the tracking pixel), so its
``/metrics`` is off without ``NEWSLETTER_METRICS_TOKEN``, like the web app's. The
small metrics server of workers, beat and the ingester may be scraped without a
token only from the machine itself; bound to another address, it wants the token.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import httpx
import pytest

from newsletter.config import Settings, reset_settings
from newsletter.sink import free_port
from newsletter.telemetry import serve_process
from tests.conftest import make_settings
from tests.tracking.test_pixel_server import _raw, _responses, serve


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        ip = str(s.getsockname()[0])
        return None if ip.startswith("127.") else ip
    return None


def test_pixel_server_metrics_are_off_without_a_token(sqlite_settings: Settings) -> None:
    with serve() as port:
        answers = _responses(_raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                        b"Connection: close\r\n\r\n"))
    status, _headers, body = answers[0]
    assert status == 404, body[:200]
    assert b"newsletter_" not in body and b"process_" not in body


def test_process_metrics_need_the_token_from_another_machine(tmp_path: Path) -> None:
    ip = _outside_address()
    if ip is None:
        pytest.skip("this machine has no address but loopback")
    port = free_port()
    reset_settings(make_settings(tmp_path, metrics_port=port, metrics_host="0.0.0.0"))
    server = serve_process("worker", 0, lambda: True)
    assert server is not None
    try:
        remote = httpx.get(f"http://{ip}:{port}/metrics", timeout=5)
        assert remote.status_code == 401 and "newsletter_" not in remote.text
        assert httpx.get(f"http://{ip}:{port}/healthz", timeout=5).status_code == 200
        local = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert local.status_code == 200 and "newsletter_deliveries" in local.text
    finally:
        server.shutdown()
        server.server_close()
