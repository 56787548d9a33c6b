"""Ops schedule in the console: the weekly slot with a picker in the publication's zone, the
next slots, the reach, a confirmation that says when and to how many, and the calendar."""

from __future__ import annotations

import html
import re
from pathlib import Path

from fastapi.testclient import TestClient

from tests.console.helpers import login
from tests.console.seed import seed


def test_ops_set_the_weekly_slot_and_see_the_next_slots_and_reach(
    client: TestClient, tmp_path: Path
) -> None:
    seed(tmp_path, send=False)
    csrf = login(client, "ops")
    page = client.get("/console/schedule")
    assert page.status_code == 200
    slug = re.search(r'action="/console/schedule/([^"]+)"', page.text)
    assert slug, page.text[-1500:]
    r = client.post(
        f"/console/schedule/{slug.group(1)}",
        data={
            "csrf": csrf,
            "weekday": "1",
            "time": "09:30",
            "timezone": "Asia/Shanghai",
            "default_list": "周报订阅",
        },
    )
    assert r.status_code == 303, r.text[:300]
    page = html.unescape(client.get("/console/schedule").text)
    slots = re.findall(r"<time datetime=\"([^\"]+)\">([^<]+)</time>", page)
    assert len(slots) >= 4
    for iso, shown in slots[:4]:
        assert iso.endswith("+08:00") and "09:30:00" in iso
        assert shown.endswith("09:30 北京时间")
    reach = re.search(r'id="reach-[^"]+">([\d,]+)<', page)
    assert reach and int(reach.group(1).replace(",", "")) > 0


def test_scheduling_from_the_issue_confirms_when_and_how_many_then_lists_it(
    client: TestClient, tmp_path: Path
) -> None:
    data = seed(tmp_path, send=False)
    csrf = login(client, "ops")
    issue_id = data["issue"]["id"]
    list_id = next(x["id"] for x in data["lists"] if x["name"] == "周报订阅")
    form = {
        "csrf": csrf,
        "list_id": str(list_id),
        "variant": "preference",
        "mode": "schedule",
        "at": "2099-03-02T08:15",  # what a datetime-local picker sends: the publication's zone
    }
    r = client.post(f"/console/issues/{issue_id}/sends", data=form)
    assert r.status_code == 200
    page = html.unescape(r.text)
    assert re.search(r'id="send-when">2099-03-02 08:15 北京时间<', page)
    count = re.search(r'id="audience-count">([\d,]+)<', page)
    assert count and int(count.group(1).replace(",", "")) > 0
    client.cookies.set("nl_lang", "en")  # the zone's name in the reader's language
    en = client.post(f"/console/issues/{issue_id}/sends", data=form).text
    assert re.search(r'id="send-when">2099-03-02 08:15 Beijing time<', en)
    client.cookies.set("nl_lang", "zh")
    r = client.post(f"/console/issues/{issue_id}/sends", data=form | {"confirm": "yes"})
    assert r.status_code == 303 and r.headers["location"].startswith("/console/sends/")
    page = html.unescape(client.get("/console/schedule").text)
    # the calendar covers the coming weeks only: 2099 is not in it, but the send page shows it
    send_page = html.unescape(client.get(r.headers["location"]).text)
    assert re.search(r'id="send-scheduled">2099-03-02 08:15 北京时间<', send_page)
    shown = re.search(r'id="p-reach">([\d,]+)<', send_page)  # not "0 / 0": who it will reach
    assert shown and shown.group(1) == count.group(1)
    assert "渠道: 邮件" in send_page
    assert "排期" in page


def test_a_bad_time_is_one_chinese_line(client: TestClient, tmp_path: Path) -> None:
    data = seed(tmp_path, send=False)
    csrf = login(client, "ops")
    list_id = next(x["id"] for x in data["lists"] if x["name"] == "周报订阅")
    r = client.post(
        f"/console/issues/{data['issue']['id']}/sends",
        data={"csrf": csrf, "list_id": str(list_id), "mode": "schedule", "at": "下周一"},
    )
    assert r.status_code == 303
    flash = client.get(r.headers["location"]).text
    assert "时间无效" in html.unescape(flash)


def test_the_calendar_shows_the_coming_weeks_with_slots_and_sends(
    client: TestClient, tmp_path: Path
) -> None:
    seed(tmp_path, send=False)
    csrf = login(client, "ops")
    slug = re.search(r'action="/console/schedule/([^"]+)"', client.get("/console/schedule").text)
    assert slug
    client.post(
        f"/console/schedule/{slug.group(1)}",
        data={"csrf": csrf, "weekday": "3", "time": "10:00", "timezone": "Asia/Shanghai",
              "default_list": "周报订阅"},
    )  # fmt: skip
    page = client.get("/console/schedule").text
    cal = re.search(r'<table class="calendar" id="calendar-[^"]+">(.*?)</table>', page, re.S)
    assert cal
    rows = re.findall(r"<tr>(.*?)</tr>", cal.group(1), re.S)
    assert len(rows) == 5  # the weekday header and four weeks
    assert [len(re.findall(r"<td", r)) for r in rows[1:]] == [7, 7, 7, 7]
    slot_cols = {
        [m.start() for m in re.finditer(r"<td", r)].index(
            max(m.start() for m in re.finditer(r"<td", r[: r.index("时段")]))
        )
        for r in rows[1:]
        if "时段" in r
    }
    assert slot_cols == {2}  # every slot falls on 周三, the third column
    assert page.count('class="today') == 1
