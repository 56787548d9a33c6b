"""The console shows the relays (never a password), each domain's warm-up plan with today's
allowance, and on a send's page how many deliveries each relay carried."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery import warmup
from newsletter.delivery.run import drive_inline
from tests.console.helpers import login
from tests.factories import seed

SECRET = "console-must-not-show-this"


def test_warmup_page_and_send_page_relays(console_settings: Settings, client: TestClient) -> None:
    s = console_settings.model_copy(
        update={
            "relays": json.dumps([
                {"name": "main", "host": "maildir", "password": SECRET},
                {"name": "brand", "host": "smtp.example.cn", "port": 465, "tls": "ssl",
                 "from_domains": ["brief.example.cn"], "username": "u", "password": SECRET},
            ]),
            "warmup_domains": {"example.org": {"schedule": [500, 1000], "shares": {"qq.com": 0.5}}},
        }
    )  # fmt: skip
    reset_settings(s)
    ids = seed(12)
    assert drive_inline(ids["send"], max_wait=5) == "finished"
    with session_scope() as ss:
        assert warmup.allowance(ss, "example.org")["used"] == 12  # type: ignore[index]
    login(client, "ops")
    page = client.get("/console/warmup")
    assert page.status_code == 200
    html = page.text
    assert "发信服务器与预热" in html and "main" in html and "brand" in html
    assert "brief.example.cn" in html and "今日额度" in html and "500" in html and "488" in html
    assert SECRET not in html
    client.cookies.set("nl_lang", "en")
    en = client.get("/console/warmup").text
    assert "Today&#39;s allowance" in en or "Today's allowance" in en
    assert SECRET not in en
    send_page = client.get(f"/console/sends/{ids['send']}").text
    assert 'id="relays"' in send_page and "main" in send_page and SECRET not in send_page
