"""The visual segment builder: rows of conditions write the JSON, the JSON stays editable
and is drawn back into rows, an invalid edit keeps what was typed and says where it goes
wrong, in Chinese; the saved segment is the JSON the rows wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.devtools.sink import SinkHandler
from newsletter.models import Segment
from tests.console.seed import seed
from tests.console.test_browser import ARGS
from tests.console.test_week import _login

pytestmark = pytest.mark.e2e


def test_rows_write_the_json_and_the_json_draws_the_rows(
    server: tuple[str, Settings, SinkHandler], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _settings, _sink = server
    seed(tmp_path, send=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 375, "height": 900}, locale="zh-CN")
            page.set_default_timeout(20_000)
            _login(page, base, "ops")
            page.goto(f"{base}/console/subscribers")
            rows = page.locator("#segment-builder .seg-row")
            expect(rows).to_have_count(1)  # the example definition, drawn as one row
            assert rows.first.locator("[name=seg-attr]").input_value() == "city"
            expect(page.locator("#segment-count")).to_have_text(re.compile(r"^\d"))

            page.click("#segment-builder .seg-add")
            expect(rows).to_have_count(2)
            rows.nth(1).locator("[name=seg-kind]").select_option("variant")
            rows.nth(1).locator("[name=seg-value]").fill("zh-Hant")
            page.locator("#segment-builder [name=seg-match]").select_option("any")
            written = json.loads(page.locator("#segment-def").input_value())
            assert written == {
                "any": [{"attr": "city", "op": "eq", "value": "北京"}, {"variant": "zh-Hant"}]
            }
            expect(page.locator("#segment-count")).to_have_text(re.compile(r"^\d"))
            # the kind's own label is Chinese, and so is every control's name
            assert rows.nth(1).locator("[name=seg-kind] option:checked").inner_text() == "版本"

            # an invalid edit: kept as typed, the mistake's place said in Chinese
            broken = '{"all": [\n  {"variant": "zh-Hant",}\n]}'
            page.fill("#segment-def", broken)
            expect(page.locator("#segment-error")).to_contain_text("JSON 格式错误")
            expect(page.locator("#segment-error")).to_contain_text("第 2 行")
            assert page.locator("#segment-def").input_value() == broken
            expect(rows).to_have_count(2)  # the rows wait for a text they can show

            # a hand edit the rows can show is drawn back; a nested one is left to the JSON
            page.fill("#segment-def", '{"all": [{"list": "周报订阅"}, {"bounced": true}]}')
            expect(rows).to_have_count(2)
            assert rows.nth(0).locator("[name=seg-kind]").input_value() == "list"
            assert rows.nth(1).locator("[name=seg-kind]").input_value() == "bounced"
            page.fill("#segment-def", '{"not": {"variant": "zh-Hant"}}')
            expect(page.locator("#segment-builder .seg-note")).to_contain_text("嵌套")

            # back to rows, then save: the segment is the JSON the rows wrote
            page.fill("#segment-def", '{"variant": "zh-Hans"}')
            expect(rows).to_have_count(1)
            page.click("#segment-builder .seg-add")
            rows.nth(1).locator("[name=seg-kind]").select_option("opened")
            rows.nth(1).locator("[name=seg-value]").fill("4")
            page.fill("#segment-form input[name=name]", "简体读者近四期打开")
            page.click("#segment-form button[type=submit]")
            page.wait_for_load_state("load")
        finally:
            browser.close()
    with session_scope() as s:
        saved = s.scalar(select(Segment).where(Segment.name == "简体读者近四期打开"))
        assert saved is not None
        assert saved.definition == {"all": [{"variant": "zh-Hans"}, {"opened_in_last_sends": 4}]}
