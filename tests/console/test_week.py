"""The whole week in the console, in Chinese, by the people who do it (issue 28).

Real headless Chromium against the real console (SQLite, the in-process runtime, a real
SMTP sink): the editor imports a brief into the existing publication and fixes one line
in the outline; an admin sends it back with a note; the editor edits it; the admin
compares the versions and approves; ops set the weekly slot with the picker, see the
reach and schedule it; the scheduler fires at the slot (the product's clock moved to
it); marketing reads the statistics and exports Excel with Chinese headers. Every time
shown on the pages it visits carries its zone.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import httpx
import pytest

from newsletter.core import clock
from newsletter.core.config import Settings
from newsletter.devtools.sink import SinkHandler
from tests.console.helpers import PASSWORDS
from tests.console.seed import seed
from tests.console.test_browser import ARGS, _shot

pytestmark = pytest.mark.e2e

BRIEF = """产业观察周报
第48期
来源：示例研究院

本期导读
【宏观】
【产业】

【宏观】
◆ 央行开展逆回购操作
来源：中国人民银行
央行开展7天期逆回购操作，利率保持不变。
◆ 统计局发布11月工业数据
来源：国家统计局
规模以上工业增加值同比增长5.1%。
【产业】
◆ 新能源汽车渗透率继续提升
来源：中国汽车工业协会
11月新能源汽车销量同比增长28%。
"""
# a time with a date, not followed by a zone name: never on a console page
_NAKED_TIME = re.compile(
    r"\b20\d\d-\d\d-\d\d \d\d:\d\d(?!\s*(北京时间|香港时间|台北时间|UTC|Asia/))"
)


def _login(page, base: str, who: str) -> None:  # type: ignore[no-untyped-def]
    page.context.clear_cookies()
    page.goto(f"{base}/console/login")
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", PASSWORDS[who])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/")


def _zoned(page) -> None:  # type: ignore[no-untyped-def]
    text = page.inner_text("main")
    naked = _NAKED_TIME.findall(text)
    assert not naked, (page.url, naked)


def test_the_week_in_the_console(server: tuple[str, Settings, SinkHandler], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _settings, sink = server
    seed(tmp_path, send=False)  # the publication, issue #47 and the subscribers
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            page.set_default_timeout(20_000)

            # 1. the editor imports the brief into the existing publication, fixes a line
            _login(page, base, "editor")
            page.goto(f"{base}/console/import")
            page.fill("#import-paste", BRIEF)
            page.click("#import-text button[type=submit]")
            expect(page.locator("#import-summary")).to_contain_text("章节")
            label = page.locator("select[aria-label*='行 9 ']")
            label.select_option("section")  # 【宏观】 is a section: one correction, once
            page.click("#import-outline button[type=submit]")
            expect(page.locator("textarea[name=markdown]")).to_have_value(
                re.compile(r"## 二、产业"), timeout=20_000
            )
            _shot(page, "week-import")
            page.click("#import-save button[type=submit]")
            page.wait_for_url(re.compile(r".*/console/issues/\d+$"))
            issue_url = page.url
            expect(page.locator("h1")).to_contain_text("#48")
            page.click("#submit-review")
            expect(page.locator("h1 .badge")).to_contain_text("审核")

            # 2. a second person sends it back with a note
            _login(page, base, "admin")
            expect(page.locator("#review-queue")).to_contain_text("第48期")
            page.goto(issue_url)
            page.fill("#request-changes textarea[name=note]", "第二条请补充发布日期")
            page.click("#request-changes button[type=submit]")
            expect(page.locator(".flash")).to_contain_text("已退回修改")

            # the editor sees the note and edits the source
            _login(page, base, "editor")
            expect(page.locator("#review-queue")).to_contain_text("第二条请补充发布日期")
            page.goto(issue_url)
            page.click("#edit-source")
            source = page.locator("#source")
            source.fill(
                source.input_value().replace(
                    "来源：国家统计局", "来源：国家统计局\n发布日期：2026-12-01"
                )
            )
            page.click("#editor-save")
            page.wait_for_url(re.compile(r".*/console/issues/\d+$"))
            page.click("#submit-review")

            # the reviewer compares the versions and approves
            _login(page, base, "admin")
            page.goto(issue_url)
            page.click("#diff-latest")
            expect(page.locator("main")).to_contain_text("发布日期")
            _shot(page, "week-diff")
            page.goto(issue_url)
            _zoned(page)
            page.click("#approve")
            expect(page.locator("h1 .badge")).to_contain_text("已审核")

            # 3. ops set the weekly slot with the picker and see the reach
            _login(page, base, "ops")
            page.goto(f"{base}/console/schedule")
            form = page.locator("form.slot-form").first
            form.locator("select[name=weekday]").select_option("1")
            form.locator("input[name=time]").fill("09:00")
            form.locator("select[name=timezone]").select_option("Asia/Shanghai")
            form.locator("select[name=default_list]").select_option("周报订阅")
            form.locator("button[type=submit]").click()
            expect(page.locator("[id^=reach-]").first).to_have_text(re.compile(r"\d"))
            expect(page.locator("[id^=next-]").first).to_contain_text("09:00 北京时间")
            _zoned(page)
            _shot(page, "week-schedule")
            page.goto(issue_url)
            opt = page.locator("#create-send select[name=list_id] option", has_text="周报订阅")
            page.select_option(
                "#create-send select[name=list_id]", value=opt.get_attribute("value")
            )
            page.click("#schedule")
            expect(page.locator("#send-when")).to_contain_text("09:00 北京时间")
            reach = int(page.inner_text("#audience-count").replace(",", ""))
            assert reach > 0
            page.click("#confirm-schedule")
            page.wait_for_url(re.compile(r".*/console/sends/\d+$"))
            send_id = int(page.url.rsplit("/", 1)[1])
            when = page.inner_text("#send-scheduled")
            assert when.endswith("09:00 北京时间")
            _zoned(page)

            # 4. the scheduler fires at the slot: the product's clock moves there
            from newsletter.delivery.run import drive_inline
            from newsletter.schedule.tick import tick

            slot = dt.datetime.strptime(when[:16], "%Y-%m-%d %H:%M").replace(
                tzinfo=dt.timezone(dt.timedelta(hours=8))
            )
            fire = slot.astimezone(dt.UTC) + dt.timedelta(seconds=5)
            clock.set_clock(lambda: fire)
            try:
                assert send_id in tick(fire)
                assert drive_inline(send_id) == "finished"
            finally:
                clock.set_clock(None)
            got = {r for _f, rs, _d in sink.messages for r in rs}
            assert len(got) == reach

            # 5. marketing read the statistics and export Excel with Chinese headers
            _login(page, base, "marketing")
            page.goto(f"{base}/console/stats/{send_id}")
            expect(page.locator("#t-opens-unique")).to_contain_text("%")
            _zoned(page)
            _shot(page, "week-stats")
            href = page.get_attribute("#xlsx-zh", "href")
            assert href
            cookies = {c["name"]: c["value"] for c in page.context.cookies()}
            body = httpx.get(base + href, cookies=cookies).content
            from openpyxl import load_workbook

            sheet = load_workbook(io.BytesIO(body)).active
            assert sheet is not None
            first = next(sheet.iter_rows(values_only=True))
            assert list(first[:2]) == ["指标", "数值"]
        finally:
            browser.close()
