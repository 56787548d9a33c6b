"""Per-subscriber history: every send that reached (or failed to reach) one reader, with
opens and clicks split into people and machines, and the lists they left."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.models import Delivery, Event, Subscriber, Subscription
from newsletter.reports.history import subscriber_history
from tests.console.helpers import login
from tests.factories import seed

AT = dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.UTC)


def _reader0(ids: dict[str, int]) -> int:
    with session_scope() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "reader0@example.com"))
        assert sid is not None
        other = s.scalar(select(Subscriber.id).where(Subscriber.email == "reader1@example.com"))
        d = Delivery(send_id=ids["send"], subscriber_id=sid, state="sent", sent_at=AT)
        bounced = Delivery(
            send_id=ids["send"], subscriber_id=other, state="bounced", last_code=550,
            last_reply="5.1.1 <script>mailbox</script> unknown",
        )  # fmt: skip
        s.add_all([d, bounced])
        s.flush()
        for n, (kind, cls) in enumerate(
            [("open", "human"), ("open", "machine"), ("open", "human"), ("click", "human"),
             ("unsubscribe", "human")]
        ):  # fmt: skip
            s.add(Event(uid=f"h{n}", send_id=ids["send"], delivery_id=d.id, kind=kind, cls=cls))
        s.add(Event(uid="other", send_id=ids["send"], delivery_id=bounced.id, kind="open"))
        sub = s.get(Subscription, (sid, ids["list"]))
        assert sub is not None
        sub.status, sub.unsubscribed_at, sub.reason = "unsubscribed", AT, "内容太多"
        return sid


def test_history_counts_people_and_machines_per_send(console_settings: Settings) -> None:
    ids = seed(3)
    sid = _reader0(ids)
    h = subscriber_history(sid)
    assert len(h["deliveries"]) == 1 and not h["more"]
    d = h["deliveries"][0]
    assert (d["opens"], d["opens_human"], d["clicks"], d["clicks_human"]) == (3, 2, 1, 1)
    assert d["unsubscribed"] and not d["complained"] and d["state"] == "sent"
    assert d["issue"].startswith("第 47 期")
    assert h["left"] == [{"list": "周报订阅", "at": AT, "reason": "内容太多"}]
    # a limit shows the newest and says there is more
    assert subscriber_history(sid, limit=0)["more"]


def test_history_on_the_subscriber_page_in_both_scripts(
    client: TestClient, console_settings: Settings
) -> None:
    ids = seed(3)
    sid = _reader0(ids)
    login(client, "ops")
    page = client.get(f"/console/subscribers/{sid}").text
    assert 'id="history"' in page and "2 / 3" in page and "1 / 1" in page
    assert "由此邮件退订" in page and "内容太多" in page and "北京时间" in page
    assert f'href="/console/sends/{ids["send"]}"' in page
    with session_scope() as s:
        other = s.scalar(select(Subscriber.id).where(Subscriber.email == "reader1@example.com"))
    bounced = client.get(f"/console/subscribers/{other}").text
    # the relay's reply is shown escaped, with its code
    assert (
        "550" in bounced and "&lt;script&gt;mailbox" in bounced and "<script>mailbox" not in bounced
    )
    client.cookies.set("nl_lang", "zh-Hant")
    assert "歷史" in client.get(f"/console/subscribers/{sid}").text


def test_zone_names_follow_the_console_language(
    client: TestClient, console_settings: Settings
) -> None:
    ids = seed(3)
    sid = _reader0(ids)
    login(client, "ops")
    client.cookies.set("nl_lang", "en")
    page = client.get(f"/console/subscribers/{sid}").text
    assert "Beijing time" in page and "北京时间" not in page
    client.cookies.set("nl_lang", "zh-Hant")
    assert "北京時間" in client.get(f"/console/subscribers/{sid}").text
    client.cookies.set("nl_lang", "zh")
    schedule = client.get("/console/schedule").text
    assert ">北京时间 · Asia/Shanghai</option>" in schedule
