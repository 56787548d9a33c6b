"""The home page's charts, stats over a date range, sends side by side, and honest
numbers: unique and total opens labelled apart, unsubscribes attributed to the send,
the variant and domain breakdowns and the links' titles on the send's page."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.delivery.run import drive_inline
from newsletter.models import Delivery, Link, Send, Subscription, utcnow
from newsletter.tracking.rollups import ingest_in
from newsletter.web.console.services import overview
from tests.console.helpers import client_as, login
from tests.console.seed import seed

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"


def _sent(tmp_path: Path) -> dict[str, Any]:
    """Seeded data with the send delivered, three human opens by two readers and a click,
    and a second (empty, finished) send of the same issue to compare with."""
    data = seed(tmp_path)
    send_id = data["send"]["id"]
    assert drive_inline(send_id) == "finished"
    with session_scope() as s:
        dels = list(
            s.scalars(
                select(Delivery)
                .where(Delivery.send_id == send_id, Delivery.state == "sent")
                .order_by(Delivery.id)
                .limit(2)
            )
        )
        later = (dels[0].sent_at or utcnow()) + dt.timedelta(hours=1)
        events = [
            {
                "uid": f"o{i}",
                "kind": "open",
                "delivery_id": d.id,
                "ua": UA,
                "at": (later + dt.timedelta(minutes=i)).isoformat(),
            }
            for i, d in enumerate([dels[0], dels[0], dels[1]])
        ]
        events.append(
            {
                "uid": "c1",
                "kind": "click",
                "delivery_id": dels[0].id,
                "ua": UA,
                "link": 1,
                "at": (later + dt.timedelta(minutes=9)).isoformat(),
            }
        )
        assert ingest_in(s, events) == 4
        send = s.get(Send, send_id)
        assert send is not None
        other = Send(
            publication_id=send.publication_id,
            issue_id=send.issue_id,
            channel="email",
            list_id=send.list_id,
            state="finished",
            started_at=utcnow() - dt.timedelta(days=1),
            planned_count=0,
        )
        s.add(other)
        s.flush()
        data["other_id"] = other.id
        data["delivery_ids"] = [d.id for d in dels]
    overview.clear_cache()
    return data


def test_dashboard_shows_empty_states_then_charts(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    overview.clear_cache()
    login(client, "marketing")
    home = client.get("/console/").text
    assert 'id="dashboard"' in home and "<svg" not in home
    assert "还没有发送过邮件" in home and "还没有订阅者" in home and "还没有打开记录" in home

    _sent(tmp_path)
    data = overview.charts_data()
    assert sum(data["opens_unique"]) == 2 and sum(data["opens_total"]) == 3
    assert sum(data["sends"]) == 2 and sum(data["recipients"]) > 30
    assert data["lists"][0]["name"] == "周报订阅" and data["lists"][0]["values"][-1] > 30
    home = client.get("/console/").text
    for box in ("chart-sends", "chart-growth", "chart-opens-unique", "chart-opens-total"):
        m = re.search(rf'id="{box}".*?</figure>', home, re.S)
        assert m and "<svg" in m.group(0), box
    # Unique and total are separate charts, each saying which it is.
    assert "每周独立打开（人，首次打开）" in home and "每周打开总次数（人，含重复打开）" in home
    assert "周报订阅" in home  # the list's line is named
    assert "https://" not in re.sub(r'href="[^"]*"|src="[^"]*"|xmlns="[^"]*"', "", home)
    # In English, the charts' titles are English too.
    client.get("/console/lang", params={"to": "en"})
    home = client.get("/console/").text
    assert "Unique opens per week" in home and "Total opens per week" in home


def test_stats_over_a_date_range_and_hostile_dates(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    data = _sent(tmp_path)
    login(client, "marketing")
    today = utcnow().astimezone(overview.CST).date()
    page = client.get(
        "/console/stats",
        params={"from": (today - dt.timedelta(days=7)).isoformat(), "to": today.isoformat()},
    )
    assert page.status_code == 200
    assert (
        f'value="{data["send"]["id"]}"' in page.text and f'value="{data["other_id"]}"' in page.text
    )
    page = client.get("/console/stats", params={"from": today.isoformat()})
    assert f'value="{data["other_id"]}"' not in page.text  # started yesterday
    page = client.get("/console/stats", params={"from": "2001-01-01", "to": "2001-01-31"})
    assert "这段时间没有发送记录" in page.text and "<svg" not in page.text
    for params, said in [
        ({"from": "2026-13-01"}, "bad date"),
        ({"to": "yesterday"}, "bad date"),
        ({"from": "../../etc/passwd"}, "bad date"),
        ({"from": "9" * 5000}, "bad date"),
        ({"from": "1066-10-14"}, "out of range"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "start is after the end"),
    ]:
        r = client.get("/console/stats", params=params)
        assert r.status_code == 422, params
        m = re.search(r'id="range-error">(.*?)</p>', r.text, re.S)
        assert m and said in m.group(1) and re.search(r"[\u4e00-\u9fff]", m.group(1)), params
        assert "Traceback" not in r.text and "/etc/passwd" not in m.group(1)
        assert "/work/" not in r.text and "/tmp/" not in r.text


def test_compare_sends_side_by_side(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    data = _sent(tmp_path)
    a, b = data["send"]["id"], data["other_id"]
    m, _csrf = client_as("marketing")  # marketing reads statistics
    r = m.get("/console/stats/compare", params={"ids": [a, b]})
    assert r.status_code == 200
    table = re.search(r'<table class="list" id="compare">.*?</table>', r.text, re.S)
    assert table
    rows = {
        re.sub(r"<[^>]+>", "", h).strip(): re.findall(r"<td[^>]*>(.*?)</td>", rest, re.S)
        for h, rest in re.findall(r'<th scope="row">(.*?)</th>(.*?)</tr>', table.group(0), re.S)
    }
    assert rows["独立打开（人）"] == ["2", "0"] and rows["打开总次数（人）"] == ["3", "0"]
    assert rows["独立点击"] == ["1", "0"]
    assert any(k.startswith("版本 zh-Hans") for k in rows)
    assert any(k.startswith("收件域 other") for k in rows)
    for params, code, said in [
        ({"ids": [a, 999999]}, 404, "send 999999 does not exist"),
        ({"ids": [a]}, 422, "choose 2 to 4 sends"),
        ({"ids": [a, a]}, 422, "choose 2 to 4 sends"),
        ({"ids": [a, b, 3, 4, 5]}, 422, "choose 2 to 4 sends"),
        ({"ids": [a, "x'; drop table send"]}, 422, "not a number"),
        ({}, 422, "choose 2 to 4 sends"),
    ]:
        r = m.get("/console/stats/compare", params=params)
        assert r.status_code == code, params
        err = re.search(r'id="compare-error">(.*?)</p>', r.text, re.S)
        assert err and said in err.group(1) and re.search(r"[\u4e00-\u9fff]", err.group(1))
        assert "Traceback" not in r.text
    # The trends table offers the comparison.
    assert 'id="compare-form"' in m.get("/console/stats").text


def test_send_stats_are_honest(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    data = _sent(tmp_path)
    send_id = data["send"]["id"]
    login(client, "marketing")
    page = client.get(f"/console/stats/{send_id}").text

    def tile(tid: str) -> str:
        m = re.search(rf'id="{tid}"><b>([^<]*)</b>', page)
        assert m, tid
        return m.group(1)

    assert tile("t-opens-unique") == "2" and tile("t-opens-total") == "3"
    assert "每小时打开总次数（人，含重复打开）" in page
    # Variant and domain breakdowns (until now only in the API) are on the page.
    assert 'id="by-variant"' in page and "zh-Hans" in page
    assert 'id="by-domain"' in page and "其他邮箱" in page
    # Link titles: the text the link had in the issue, with its address.
    with session_scope() as s:
        link = s.scalar(
            select(Link).where(Link.issue_id == data["issue"]["id"], Link.position == 1)
        )
        assert link is not None and link.text
    links = re.search(r'<table class="list" id="links">.*?</table>', page, re.S)
    assert links and f'<b class="link-title">{link.text}</b>' in links.group(0)
    # Unsubscribes: a reader leaving the list some other way is not this send's.
    assert tile("t-unsub") == "0"
    with session_scope() as s:
        s.execute(
            update(Subscription)
            .where(Subscription.list_id == data["lists"][0]["id"])
            .values(status="unsubscribed", unsubscribed_at=utcnow())
        )
    page = client.get(f"/console/stats/{send_id}").text
    assert tile("t-unsub") == "0"
    with session_scope() as s:
        ingest_in(
            s,
            [
                {
                    "uid": "u1",
                    "kind": "unsubscribe",
                    "delivery_id": data["delivery_ids"][1],
                    "at": utcnow().isoformat(),
                }
            ],
        )
    page = client.get(f"/console/stats/{send_id}").text
    assert tile("t-unsub") == "1"
    assert client.get("/console/stats/999999").status_code == 404


@pytest.mark.parametrize("lang", ["en", "zh-Hant"])
def test_new_pages_find_their_messages(
    client: TestClient, console_settings: Settings, tmp_path: Path, lang: str
) -> None:
    from newsletter.web.console import i18n

    data = _sent(tmp_path)
    i18n.MISSES[lang].clear()
    client.get("/console/lang", params={"to": lang})
    csrf = login(client, "ops")
    r = client.post(
        "/console/subscribers/bulk-job",
        data={"csrf": csrf, "action": "block", "q": "zzz-nobody", "list_id": ""},
    )
    job = r.headers["location"]
    for url in [
        "/console/",
        "/console/stats?from=2026-01-01&to=2099-01-01",
        "/console/stats?from=bad",
        f"/console/stats/{data['send']['id']}",
        f"/console/stats/compare?ids={data['send']['id']}&ids={data['other_id']}",
        "/console/stats/compare?ids=1",
        "/console/jobs",
        job,
    ]:
        assert client.get(url).status_code in (200, 404, 422), url
    assert not i18n.MISSES[lang], sorted(i18n.MISSES[lang])[:20]
