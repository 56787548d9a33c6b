"""The console shows an alert banner while a send is auto-paused or failed: ops
see it even when the relay that would have mailed the alert is down."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.delivery.alerts import notify
from newsletter.models import Send
from tests.console.helpers import login
from tests.factories import seed


def test_banner_while_paused_gone_once_resumed(
    client: TestClient, console_settings: Settings
) -> None:
    ids = seed(1)
    with session_scope() as s:
        s.execute(update(Send).where(Send.id == ids["send"]).values(state="paused"))
        notify(s, "auto_paused", f"send {ids['send']} auto-paused",
               "the relay could not be reached <script>x</script>",
               key=f"paused:{ids['send']}:t")  # fmt: skip
    login(client, "marketing")
    html = client.get("/console/").text
    assert f"send {ids['send']} auto-paused" in html and 'role="alert"' in html
    assert "<script>x</script>" not in html  # escaped like every other field
    with session_scope() as s:
        s.execute(update(Send).where(Send.id == ids["send"]).values(state="sending"))
    assert "auto-paused" not in client.get("/console/").text
