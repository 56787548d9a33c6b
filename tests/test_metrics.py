"""GET /metrics: off without a token, Bearer-only with one, and the numbers agree
with the ledger (PostgreSQL, Redis)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import update

from newsletter.config import reset_settings
from newsletter.db import session_scope
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
        "metrics_token": SecretStr("m" * 32), "redis_url": redis_url}))  # fmt: skip
    ids = seed(12)
    start(ids["send"])
    with session_scope() as s:
        s.execute(update(Delivery).where(Delivery.id <= 3).values(state="sent"))
        s.execute(update(Delivery).where(Delivery.id == 4).values(state="sending", at_risk=True))
        s.execute(update(Send).values(state="paused", auto_paused_at=Send.created_at))
    with TestClient(create_app()) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = c.get("/metrics", headers={"Authorization": "Bearer " + "m" * 32})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert _value(text, "newsletter_sends", state="paused") == 1
    assert _value(text, "newsletter_deliveries", state="sent") == 3
    assert _value(text, "newsletter_deliveries", state="queued") == 8
    assert _value(text, "newsletter_deliveries_at_risk") == 1
    assert _value(text, "newsletter_sends_auto_paused") == 1
    assert _value(text, "newsletter_events_stream_length") >= 0
    assert _value(text, "newsletter_scrape_errors") == 0
    for line in text.splitlines():  # the exposition format: comments or name{labels} value
        assert line.startswith("# ") or re.match(r"^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$", line), line
