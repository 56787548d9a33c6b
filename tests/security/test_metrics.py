"""Metrics are for the operator's scraper: an outsider who reaches a port gets no figures.

The pixel server faces the internet (it serves the tracking pixel), so its
``/metrics`` is off without ``NEWSLETTER_METRICS_TOKEN``, like the web app's. The
small metrics server of workers, beat and the ingester may be scraped without a
token only from the machine itself; bound to another address, it wants the token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from newsletter.core.config import Settings
from tests.conftest import ROOT
from tests.fleet.netns import Fabric, Host, available
from tests.tracking.test_pixel_server import _raw, _responses, serve


def test_pixel_server_metrics_are_off_without_a_token(sqlite_settings: Settings) -> None:
    with serve() as port:
        answers = _responses(
            _raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        )
    status, _headers, body = answers[0]
    assert status == 404, body[:200]
    assert b"newsletter_" not in body and b"process_" not in body


_SERVE = """
import time
from newsletter.core.telemetry import serve_process
assert serve_process("worker", 0, lambda: True) is not None
time.sleep(120)
"""

_GET = """
import json, sys, time, httpx
url = sys.argv[1]
for _ in range(100):
    try:
        r = httpx.get(url, timeout=2)
        print(json.dumps([r.status_code, r.text[:2000]]))
        break
    except httpx.TransportError:
        time.sleep(0.1)
"""


def test_process_metrics_need_the_token_from_another_machine(tmp_path: Path) -> None:
    """A worker's metrics server bound to every address, on a host of its own (a network
    namespace), scraped from a second host and from itself: the other host gets 401 and
    no figures (health still answers), the host itself gets the figures."""
    why = available()
    assert why is None, f"this test builds two hosts from network namespaces: {why}"
    port = 9464
    env = {
        **os.environ,
        "NEWSLETTER_METRICS_PORT": str(port),
        "NEWSLETTER_METRICS_HOST": "0.0.0.0",
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
    }
    env.pop("NEWSLETTER_METRICS_TOKEN", None)

    def get(fab: Fabric, host: Host, url: str) -> tuple[int, str]:
        out = subprocess.run(
            ["ip", "netns", "exec", host.netns, sys.executable, "-c", _GET, url],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=ROOT,
        )
        assert out.stdout.strip(), out.stderr[-2000:]
        status, text = json.loads(out.stdout)
        return int(status), str(text)

    with Fabric(tmp_path / "fabric") as fab:
        mon, other = fab.add_host("mon"), fab.add_host("scr")
        fab.start(mon, [sys.executable, "-c", _SERVE], env=env, log="metrics", cwd=ROOT)
        status, text = get(fab, other, f"http://{mon.addr}:{port}/metrics")
        assert status == 401 and "newsletter_" not in text
        assert get(fab, other, f"http://{mon.addr}:{port}/healthz")[0] == 200
        status, text = get(fab, mon, f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "newsletter_deliveries" in text
