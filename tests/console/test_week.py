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
from tests.console.test_responsive import AXE

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


#: Words a Chinese page may carry in Latin letters: names of formats, standards and
#: products (the same in every language), never a sentence or a label in English.
_NAMES = frozenset(
    [
        "CSV",
        "XLSX",
        "Excel",
        "API",
        "DKIM",
        "SMTP",
        "UTC",
        "HTML",
        "Markdown",
        "Word",
        "RSS",
        "Atom",
        "JSON",
        "SSO",
        "QR",
        "PNG",
        "URL",
        "ID",
        "IP",
        "SPF",
        "DMARC",
        "MX",
        "WeChat",
        "TOTP",
        "OpenCC",
        "English",
        "docx",
        "html",
        "mhtml",
        "htm",
        "txt",
        "md",
        "xlsx",
        "csv",
    ]
)  # ("English" is the language switch, named in its own language)
#: Latin words of the seeded data itself (names, slugs), not the product's labels.
_DATA = "weekly"
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]+")
_NOT_WORDS = re.compile(
    r"https?://\S+|[\w.+-]+@[\w.-]+|\b[\w-]+\.(?:md|docx|html|csv|xlsx|png|jpg|txt)\b"
    r"|\b(?:zh-Hans|zh-Hant|s2t|s2hk|s2tw)\b|#\d+|\b(?:Asia|Europe|America|Etc)/[A-Za-z_]+"
)


def _css_names() -> set[str]:
    """Email clients and CSS feature names as the caniemail data spells them: proper names
    and code, shown as they are in every language."""
    from newsletter.render.csslint import MAJOR_CLIENTS, _features

    words = set(MAJOR_CLIENTS) | {p for ps in MAJOR_CLIENTS.values() for p in ps}
    for feat in _features().values():
        words |= set(_LATIN_WORD.findall(str(feat.get("title", ""))))
    return words | {"CSS", "caniemail"}


def _english(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Latin-letter words on the page that are not names, addresses, slugs or data."""
    page.evaluate(
        "() => document.querySelectorAll('code, pre, .nl-data, textarea, iframe')"
        ".forEach(e => e.setAttribute('data-skip', '1'))"
    )
    text = page.evaluate(
        """() => { const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        let out = []; let n;
        while ((n = w.nextNode())) {
          const el = n.parentElement;
          if (!el || el.closest('[data-skip], script, style, [hidden]')) continue;
          const cs = getComputedStyle(el);
          if (cs.display === 'none' || cs.visibility === 'hidden') continue;
          out.push(n.textContent);
        }
        return out.join(' '); }"""
    )
    text = _NOT_WORDS.sub(" ", text)
    data = {w for w in re.findall(r"[A-Za-z][\w-]*", _DATA)} | _css_names()
    return sorted({w for w in _LATIN_WORD.findall(text) if w not in _NAMES and w not in data})


def _axe(page) -> list[str]:  # type: ignore[no-untyped-def]
    page.add_script_tag(content=AXE)
    return list(
        page.evaluate(
            """() => axe.run({exclude: [["#preview"], ["#editor-preview"]]},
            {resultTypes: ["violations"]}).then(r => r.violations
            .filter(v => v.impact === "critical" || v.impact === "serious")
            .map(v => v.impact + " " + v.id + ": "
                 + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", ")))"""
        )
    )


def _zoned(page) -> None:  # type: ignore[no-untyped-def]
    """Every page the week visits: no time without its zone, no English word, axe clean."""
    text = page.inner_text("main")
    naked = _NAKED_TIME.findall(text)
    assert not naked, (page.url, naked)
    english = _english(page)
    assert not english, (
        " ".join(english),
        page.url,
        english,
        [
            m.group(0)
            for m in re.finditer(
                r"[^。\n]{0,40}\b(" + "|".join(english[:8]) + r")\b[^。\n]{0,40}",
                page.inner_text("body"),
            )
        ][:12],
    )
    found = _axe(page)
    assert not found, (page.url, found)


@pytest.mark.parametrize("width", [1280, 375])
def test_the_week_in_the_console(
    server: tuple[str, Settings, SinkHandler], tmp_path: Path, width: int
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _settings, sink = server
    seed(tmp_path, send=False)  # the publication, issue #47 and the subscribers
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            # axe is injected as a script: this context bypasses the console's CSP for it
            ctx = browser.new_context(
                viewport={"width": width, "height": 900}, locale="zh-CN", bypass_csp=True
            )
            page = ctx.new_page()
            page.set_default_timeout(20_000)
            page.set_default_navigation_timeout(60_000)  # a loaded CI host: pages, not logic

            # 1. the editor imports the brief into the existing publication, fixes a line
            _login(page, base, "editor")
            page.goto(f"{base}/console/import")
            _zoned(page)
            page.fill("#import-paste", BRIEF)
            page.click("#import-text button[type=submit]")
            expect(page.locator("#import-summary")).to_contain_text("章节")
            _zoned(page)  # the outline, its promote/demote buttons and the tree
            label = page.locator("select[aria-label*='行 9 ']")
            label.select_option("section")  # 【宏观】 is a section: one correction, once
            page.click("#import-outline button[type=submit]")
            expect(page.locator("textarea[name=markdown]")).to_have_value(
                re.compile(r"## 二、产业"), timeout=20_000
            )
            _shot(page, f"week-import-{width}")
            page.click("#import-save button[type=submit]")
            page.wait_for_url(re.compile(r".*/console/issues/\d+$"))
            issue_url = page.url
            expect(page.locator("h1")).to_contain_text("#48")
            page.click("#submit-review")
            expect(page.locator("h1 .badge")).to_contain_text("审核")

            # 2. a second person sends it back with a note
            _login(page, base, "admin")
            expect(page.locator("#review-queue")).to_contain_text("第48期")
            _zoned(page)
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
            _zoned(page)
            _shot(page, f"week-diff-{width}")
            page.goto(issue_url)
            _zoned(page)
            # the preview is one stop for the keyboard: Tab leaves it, not into its links
            page.focus("#preview-panel")
            page.keyboard.press("Tab")
            left = page.evaluate(
                "() => [document.activeElement.tagName,"
                " !!document.activeElement.closest('#preview-panel')]"
            )
            assert left[0] != "IFRAME" and not left[1], left
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
            _shot(page, f"week-schedule-{width}")
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
            _shot(page, f"week-stats-{width}")
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
