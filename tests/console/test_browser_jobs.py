"""The dashboard, stats over a date range, sends side by side and an import job's
progress bar, in real headless Chromium at 1366 px and 375 px: nothing scrolls
sideways and axe-core finds no critical or serious violation."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from newsletter.core.config import Settings
from newsletter.devtools.sink import SinkHandler
from newsletter.runtime import jobs as joblib
from tests.console.helpers import PASSWORDS
from tests.console.test_dashboard_stats import _sent
from tests.console.test_responsive import ARGS, _axe

pytestmark = pytest.mark.e2e

ROWS = 3000


def _check(page: Any, width: int, where: str, problems: list[str]) -> None:
    sw = page.evaluate("document.documentElement.scrollWidth")
    if sw > width:
        problems.append(f"{width} {where}: scrollWidth {sw}")
    problems.extend(f"{width} {where}: {v}" for v in _axe(page))


def test_dashboard_stats_and_an_import_job_in_a_browser(
    server: tuple[str, Settings, SinkHandler], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import sync_playwright

    base, _settings, _sink = server
    data = _sent(tmp_path)
    a, b = data["send"]["id"], data["other_id"]
    csv = tmp_path / "readers.csv"
    csv.write_text(
        "email,name\n" + "".join(f"r{i}@example.net,读者{i}\n" for i in range(ROWS)),
        encoding="utf-8",
    )
    # Small chunks, each a little slow, so the bar is seen moving (the server runs here).
    real = joblib._progress

    def slow(job_id: int, **values: Any) -> None:
        time.sleep(0.3)
        real(job_id, **values)

    monkeypatch.setattr(joblib, "IMPORT_CHUNK", 250)
    monkeypatch.setattr(joblib, "_progress", slow)
    problems: list[str] = []
    seen_progress: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            for width, lang in ((1366, "zh"), (375, "en")):
                ctx = browser.new_context(
                    viewport={"width": width, "height": 800}, locale="zh-CN", bypass_csp=True
                )
                page = ctx.new_page()
                page.set_default_timeout(20_000)
                page.goto(f"{base}/console/login")
                page.fill("input[name=username]", "ops")
                page.fill("input[name=password]", PASSWORDS["ops"])
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/console/")
                page.goto(f"{base}/console/lang?to={lang}&next=%2Fconsole%2F")
                # The dashboard: four charts drawn on the server.
                assert page.locator("#dashboard svg").count() == 4
                _check(page, width, "dashboard", problems)
                # Stats over a date range, then two sends side by side.
                page.goto(f"{base}/console/stats")
                page.fill("input[name=from]", "2020-01-01")
                page.fill("input[name=to]", "2099-12-31")
                page.click("#range-form button[type=submit]")
                page.wait_for_url(re.compile(r".*from=2020-01-01.*"))
                _check(page, width, "stats range", problems)
                page.check(f"#compare-form input[value='{a}']")
                page.check(f"#compare-form input[value='{b}']")
                page.click("#compare-form button[type=submit]")
                page.wait_for_url(re.compile(r".*/console/stats/compare\?.*"))
                assert page.locator("#compare th[scope=col]").count() == 3
                _check(page, width, "compare", problems)
                page.goto(f"{base}/console/stats/compare?ids={a}&ids=999999")
                assert "999999" in page.inner_text("#compare-error")
                _check(page, width, "compare error", problems)
                page.goto(f"{base}/console/stats/{a}")
                _check(page, width, "send stats", problems)
                # An import: the bar counts rows while the job runs, then says done.
                page.goto(f"{base}/console/subscribers")
                page.set_input_files("#import-form input[name=file]", str(csv))
                page.fill("#import-form input[name=list_name]", f"浏览器{width}")
                page.check("#import-new-list")
                page.click("#import-form button[type=submit]")
                page.wait_for_function(
                    "() => /\\d[\\d,]* \\/ 3,000/.test(document.querySelector('#import-text').textContent)"
                )
                seen_progress.append(page.inner_text("#import-text"))
                _check(page, width, "import running", problems)
                page.wait_for_function("""() => {  // some rows done, still importing
                    const t = document.querySelector('#import-text').textContent;
                    const m = t.match(/([\\d,]+) \\/ 3,000/);
                    return m && m[1] !== "0" && /^(导入中|Importing)/.test(t); }""")
                seen_progress.append(page.inner_text("#import-text"))
                page.wait_for_function(
                    "() => document.querySelector('#import-text').className === 'good'",
                    timeout=60_000,
                )
                assert page.get_attribute("#import-bar", "aria-valuenow") == "100"
                assert "3,000 / 3,000" in page.inner_text("#import-text")
                _check(page, width, "import done", problems)
                page.click("#import-job")
                page.wait_for_selector("#job[data-state=done]")
                assert page.inner_text("#j-done") == "3,000"
                _check(page, width, "job page", problems)
                page.goto(f"{base}/console/jobs")
                _check(page, width, "jobs", problems)
                ctx.close()
        finally:
            browser.close()
    # The bar showed a row count before the end (rows done of the total).
    assert len(seen_progress) == 4 and not any(
        t.startswith(("完成", "Done")) for t in seen_progress
    ), seen_progress
    assert not problems, "\n".join(problems)
