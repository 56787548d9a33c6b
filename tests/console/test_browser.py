"""The main journeys in real headless Chromium (Debian's, driven by Playwright).

Ops logs in, uploads examples/issue-sample.md (with its images), sees the
preview tabs, approves, sends a test to a real SMTP sink, imports
examples/subscribers.csv (and gets the error report of its broken rows),
schedules a send, then starts one and watches the progress reach 100 %.
Readers open the messages (real pixel requests).  Marketing logs in and sees
the stats page with the opens chart.  Screenshots of the main pages go to
docs/screenshots/console-*.png.
"""

from __future__ import annotations

import email
import os
import re
import time
from email import policy
from pathlib import Path

import httpx
import pytest

from newsletter.core.config import Settings
from newsletter.devtools.sink import SinkHandler
from tests.console.helpers import PASSWORDS

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# The screenshots in docs/ are refreshed on purpose (NEWSLETTER_UPDATE_SCREENSHOTS=1);
# an ordinary test run writes them under var/ and leaves the checkout clean.
SHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("NEWSLETTER_UPDATE_SCREENSHOTS")
    else ROOT / "var" / "screenshots"
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _login(page, base: str, who: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/console/login")
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", PASSWORDS[who])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/")


def _pick_list(page) -> None:  # type: ignore[no-untyped-def]
    opt = page.locator("#create-send select[name=list_id] option", has_text="周报订阅")
    page.select_option("#create-send select[name=list_id]", value=opt.get_attribute("value"))


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"console-{name}.png"), full_page=True)


def test_ops_and_marketing_journeys(server: tuple[str, Settings, SinkHandler]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _settings, sink = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="zh-CN")
            page.set_default_timeout(20_000)
            timings: dict[str, float] = {}

            # -- the editor: log in, upload the issue with its images ----------------------
            editor = page
            _login(editor, base, "editor")
            _shot(page, "login-home")
            page.goto(f"{base}/console/issues")
            page.set_input_files(
                "#upload-issue input[name=file]", str(EXAMPLES / "issue-sample.md")
            )
            page.set_input_files(
                "#upload-issue input[name=images]",
                [str(x) for x in sorted((EXAMPLES / "images").glob("*.png"))],
            )
            t0 = time.perf_counter()
            page.click("#upload-issue button[type=submit]")
            page.wait_for_url(re.compile(r".*/console/issues/\d+$"))
            timings["upload+preview"] = time.perf_counter() - t0
            issue_url = page.url

            # -- the preview: the email frame shows the issue, the tabs switch ----------
            frame = page.frame_locator("#preview")
            expect(frame.locator("body")).to_contain_text("公共数据", timeout=20_000)
            expect(page.locator(".lint")).to_be_visible()
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(300)
            _shot(page, "issue-preview")
            page.click("button[data-tab^=wechat-]")
            expect(frame.locator("body")).to_contain_text("国务院办公厅")
            page.click("button[data-tab=email_html][data-width='375']")
            width = page.eval_on_selector("#preview", "e => e.getBoundingClientRect().width")
            assert width <= 380
            expect(frame.locator("body")).to_contain_text("公共数据")

            # -- four-eyes: the uploader is not offered approval, and is told why; ops is
            expect(page.locator("#approve")).to_have_count(0)
            expect(page.locator("#approve-why")).to_contain_text("四眼原则")
            page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="zh-CN")
            page.set_default_timeout(20_000)
            _login(page, base, "ops")
            page.goto(issue_url)
            # -- approve and test-send -------------------------------------------------
            page.click("#approve")
            expect(page.locator(".flash")).to_contain_text("已审核通过")
            expect(page.locator("h1 .badge")).to_contain_text("已审核")
            page.fill("#test-send input[name=to]", "ops-desk@example.org")
            page.click("#test-send button[type=submit]")
            expect(page.locator(".flash")).to_contain_text("ops-desk@example.org (zh-Hans): 已发送")
            assert any("ops-desk@example.org" in rcpts for _f, rcpts, _d in sink.messages)
            assert b"X-Newsletter-Test: yes" in sink.messages[-1][2]

            # -- import the subscribers with a progress bar and an error report ---------
            page.goto(f"{base}/console/subscribers")
            page.set_input_files("#import-form input[name=file]", str(EXAMPLES / "subscribers.csv"))
            page.fill("#import-form input[name=list_name]", "周报订阅")
            page.check("#import-new-list")  # a new list is asked for, never made from a typo
            page.click("#import-form button[type=submit]")
            expect(page.locator("#import-text.good")).to_be_visible()
            expect(page.locator("#import-fill")).to_have_attribute("style", re.compile("100%"))
            expect(page.locator("#import-report")).to_be_visible()
            report = page.request.get(base + (page.get_attribute("#import-report", "href") or ""))
            assert report.ok and "row" in report.text()
            # The lists table is fresh after the import (no reload): the new list and its count.
            row = page.locator("#lists-body tr", has_text="周报订阅")
            expect(row).to_have_count(1)
            assert int(row.locator(".l-active").inner_text().replace(",", "")) > 30
            _shot(page, "subscribers")

            # -- schedule one send, then start another now and watch it finish ----------
            page.goto(issue_url)
            _pick_list(page)
            page.fill("#create-send input[name=at]", "2099-11-30T09:00")  # the picker's format
            page.click("#schedule")  # asks first: when (in the publication's zone) and to whom
            expect(page.locator("#send-when")).to_contain_text("2099-11-30 09:00 北京时间")
            page.click("#confirm-schedule")
            page.wait_for_url(re.compile(r".*/console/sends/\d+$"))
            expect(page.locator("#p-state")).to_have_text("已排期")
            page.goto(issue_url)
            _pick_list(page)
            page.click("#send-now")  # asks first, naming the issue and the audience
            expect(page.locator("#confirm-send")).to_contain_text("第47期")
            assert int(page.inner_text("#audience-count").replace(",", "")) > 30
            page.click("#confirm-send-now")
            page.wait_for_url(re.compile(r".*/console/sends/\d+$"))
            send_id = int(page.url.rsplit("/", 1)[1])
            expect(page.locator("#p-percent")).to_have_text(
                re.compile(r"^100(\.0)?%$"), timeout=30_000
            )
            expect(page.locator("#p-state")).to_have_text("已完成")
            sent = int(page.inner_text("#c-sent").replace(",", ""))
            assert sent > 30
            assert page.inner_text("#p-remaining") == "0"
            expect(page.locator("#btn-start")).to_be_hidden()
            page.wait_for_timeout(600)  # let the bar's width transition finish
            _shot(page, "send-progress")

            # -- readers open the messages (real pixel requests) -----------------------
            pixels = []
            for _f, _r, data in sink.messages:
                msg = email.message_from_bytes(data, policy=policy.default)
                if msg["X-Newsletter-Test"]:
                    continue
                part = msg.get_body(("html",))
                html = part.get_content() if part else ""
                pixels += re.findall(r'src="(http://127\.0\.0\.1:\d+/o/[^"]+\.gif)"', html)
            assert len(pixels) >= sent
            ua = (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
                "(KHTML, like Gecko) Mobile/15E148"
            )
            for url in pixels[: sent * 2 // 3]:
                assert httpx.get(url, headers={"User-Agent": ua}).status_code == 200

            # -- marketing: stats with the chart, no ops buttons -----------------------
            page.context.clear_cookies()
            _login(page, base, "marketing")
            page.goto(f"{base}/console/sends/{send_id}")
            assert page.locator("#btn-start").count() == 0
            t0 = time.perf_counter()
            page.goto(f"{base}/console/stats/{send_id}")
            timings["stats"] = time.perf_counter() - t0
            expect(page.locator("#opens-chart svg")).to_be_visible()
            assert page.locator("#opens-chart svg rect").count() >= 1
            tiles = page.inner_text(".tiles")
            assert str(sent) in tiles
            _shot(page, "stats-send")
            page.goto(f"{base}/console/stats")
            expect(page.locator(".chart-box svg circle")).to_have_count(2)
            _shot(page, "stats-trends")
            # Marketing cannot reach ops pages.
            r = page.request.post(f"{base}/api/sends/{send_id}/cancel")
            assert r.status == 403

            # -- English, and the admin's settings page --------------------------------
            page.context.clear_cookies()
            _login(page, base, "admin")
            page.goto(f"{base}/console/lang?to=en&next=%2Fconsole%2Fsettings")
            expect(page.locator("h1")).to_have_text("Settings")
            _shot(page, "settings-en")
            page.goto(f"{base}/console/lang?to=zh&next=%2Fconsole%2Fsends")
            expect(page.locator("h1")).to_have_text("发送")
            _shot(page, "sends")
            print("timings", timings)
        finally:
            browser.close()
