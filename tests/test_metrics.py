"""GET /metrics: off without a token, Bearer-only with one, and the numbers agree
with the ledger (PostgreSQL, Redis)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import update

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.run import start
from newsletter.models import Delivery, Send
from newsletter.web.app import create_app
from tests.factories import seed


def _value(text: str, name: str, **labels: str) -> float:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name + (f"{{{inner}}}" if labels else "")) + r" ([0-9.e+-]+)$"
    m = re.search(pattern, text, re.M)
    assert m, (name, labels, text)
    return float(m.group(1))


def test_metrics_are_off_without_a_token(pg_settings) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app()) as c:
        assert c.get("/metrics").status_code == 404


def test_metrics_need_the_token_and_match_the_ledger(pg_settings, redis_url) -> None:  # type: ignore[no-untyped-def]
    reset_settings(pg_settings.model_copy(update={
        "metrics_token": SecretStr("metrics-0123456789abcdef"), "redis_url": redis_url}))  # fmt: skip
    ids = seed(12)
    start(ids["send"])
    with session_scope() as s:
        s.execute(update(Delivery).where(Delivery.id <= 3).values(state="sent"))
        s.execute(update(Delivery).where(Delivery.id == 4).values(state="sending", at_risk=True))
        s.execute(update(Send).values(state="paused", auto_paused_at=Send.created_at))
    with TestClient(create_app()) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = c.get("/metrics", headers={"Authorization": "Bearer metrics-0123456789abcdef"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert _value(text, "newsletter_sends", state="paused") == 1
    assert _value(text, "newsletter_queue", state="sent") == 3
    assert _value(text, "newsletter_queue", state="queued") == 8
    assert _value(text, "newsletter_queue_depth") == 8
    assert _value(text, "newsletter_at_risk") == 1
    assert _value(text, "newsletter_sends_auto_paused") == 1
    assert _value(text, "newsletter_events_stream_length") >= 0
    assert _value(text, "newsletter_scrape_errors") == 0
    # an independent parser reads every family
    from prometheus_client.parser import text_string_to_metric_families

    names = {f.name for f in text_string_to_metric_families(text)}
    for name in (
        "newsletter_sends",
        "newsletter_queue",
        "newsletter_queue_depth",
        "newsletter_deferrals",
        "newsletter_at_risk",
        "newsletter_send_rate",
        "newsletter_suppressions",
        "newsletter_live_bounces",
        "newsletter_ingest_lag",
        "newsletter_wechat_publications",
        "newsletter_deliveries",
        "newsletter_lease_expiries",
        "newsletter_claim_lag_seconds",
        "newsletter_wechat_api_calls",
        "newsletter_events_ingested",
        "newsletter_import_rows",
    ):
        assert name in names, name


def test_health_and_readiness(pg_settings) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app()) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").text == "ready\n"
    reset_settings(
        pg_settings.model_copy(
            update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
        )
    )
    from newsletter.core.db import dispose

    dispose()
    with TestClient(create_app()) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "database" in r.text
        assert c.get("/healthz").status_code == 200
    dispose()


def test_a_second_process_on_the_metrics_port_takes_a_free_one_in_one_line(
    tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    """Issue 30: two beats on one host clashed on the metrics port (a traceback). The
    second now serves on a free port and says which in one line (Chinese first)."""
    import logging

    import httpx

    from newsletter.core.config import reset_settings
    from newsletter.core.telemetry import serve_process
    from newsletter.devtools.sink import free_port
    from tests.conftest import make_settings

    base = free_port()
    reset_settings(make_settings(tmp_path, metrics_port=base - 1))  # beat: +1 = base
    first = serve_process("beat", 1, lambda: True)
    assert first is not None and first.server_port == base
    try:
        with caplog.at_level(logging.INFO, logger="newsletter.core.telemetry"):
            second = serve_process("beat", 1, lambda: True)
        assert second is not None and second.server_port not in (0, base)
        try:
            lines = [r.getMessage() for r in caplog.records]
            assert len(lines) == 1, lines
            assert lines[0].startswith(f"beat: 指标端口 {base} 已被占用，改用 {second.server_port}")
            assert not any(r.exc_info for r in caplog.records)
            r = httpx.get(f"http://127.0.0.1:{second.server_port}/healthz", timeout=5)
            assert r.status_code == 200 and r.text.startswith("ok beat")
        finally:
            second.shutdown()
            second.server_close()
    finally:
        first.shutdown()
        first.server_close()
        reset_settings(None)
