"""'Send now' asks for confirmation, naming the issue, the audience and its count;
nothing is created until the confirmation is posted."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.models import Send
from tests.console.helpers import login
from tests.factories import seed


def test_send_now_asks_first(client: TestClient, console_settings: Settings) -> None:
    ids = seed(7)
    with session_scope() as s:
        s.delete(s.get(Send, ids["send"]))
    csrf = login(client, "ops")
    form = {"csrf": csrf, "list_id": str(ids["list"]), "mode": "now", "variant": "preference"}
    r = client.post(f"/console/issues/{ids['issue']}/sends", data=form)
    assert r.status_code == 200
    assert "第47期" in r.text and "周报订阅" in r.text
    m = re.search(r'id="audience-count">([\d,]+)<', r.text)
    assert m and int(m.group(1)) == 7
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Send)) == 0  # nothing yet
    r = client.post(f"/console/issues/{ids['issue']}/sends", data={**form, "confirm": "yes"})
    assert r.status_code == 303 and re.search(r"/console/sends/\d+$", r.headers["location"])
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Send)) == 1


def test_an_editor_cannot_send(client: TestClient, console_settings: Settings) -> None:
    ids = seed(2)
    csrf = login(client, "editor")
    form = {"csrf": csrf, "list_id": str(ids["list"]), "mode": "now", "confirm": "yes"}
    r = client.post(f"/console/issues/{ids['issue']}/sends", data=form)
    assert r.status_code == 403
    r = client.post("/console/settings/publication", data={"csrf": csrf, "name": "x"})
    assert r.status_code == 403


def test_progress_says_pausing_until_workers_let_go(
    client: TestClient, console_settings: Settings
) -> None:
    from sqlalchemy import update

    from newsletter.delivery.run import start
    from newsletter.models import Delivery
    from newsletter.web.console.services import progress

    ids = seed(3)
    start(ids["send"])
    with session_scope() as s:
        s.execute(update(Send).values(state="paused"))
        s.execute(update(Delivery).where(Delivery.id == 1).values(state="sending", at_risk=True))
    p = progress(ids["send"])
    assert p["pausing"] is True and p["at_risk"] == 1
    with session_scope() as s:
        s.execute(update(Delivery).where(Delivery.id == 1).values(state="sent"))
    assert progress(ids["send"])["pausing"] is False
    csrf = login(client, "marketing")
    assert csrf and client.get(f"/api/sends/{ids['send']}").json()["pausing"] is False


def test_the_progress_carries_per_relay_counts_and_an_email_send_shows_no_wechat(
    client: TestClient, tmp_path: Path
) -> None:
    from newsletter.delivery.run import drive_inline
    from tests.console.seed import seed as console_seed

    data = console_seed(tmp_path)
    send_id = data["send"]["id"]
    drive_inline(send_id)
    login(client, "ops")
    p = client.get(f"/api/sends/{send_id}").json()
    assert isinstance(p["relays"], dict)
    assert sum(p["relays"].values()) == p["counts"]["sent"] > 0
    page = client.get(f"/console/sends/{send_id}").text
    assert 'id="p-wechat"' not in page and "公众号渠道" not in page
