"""The console on a phone and for assistive technology, in real headless Chromium.

Every main page, as admin, in Chinese and English, at 375 px and 1366 px:
nothing scrolls sideways, the navigation stays one line, header cells do not
wrap, and axe-core (vendored from npm, tests/console/vendor/axe-core) finds no
critical or serious violation (nor a skipped heading level or an empty header cell).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from newsletter.core.config import Settings
from newsletter.devtools.sink import SinkHandler
from tests.console.helpers import PASSWORDS
from tests.console.seed import seed

pytestmark = pytest.mark.e2e

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _pages(data: dict[str, Any]) -> list[str]:
    issue, send = data["issue"]["id"], data["send"]["id"]
    return [
        "/console/",
        "/console/issues",
        f"/console/issues/{issue}",
        "/console/import",
        "/console/sends",
        f"/console/sends/{send}",
        "/console/subscribers",
        "/console/subscribers?q=a&list_id=",
        "/console/stats",
        f"/console/stats/{send}",
        "/console/settings",
        "/console/audit",
        "/console/account",
        "/console/no-such-page",
        "/console/bounces",
        f"/console/lists/{data['lists'][0]['id']}",
        "/console/subscribers/1",
        f"/console/editor/{issue}",
        "/console/jobs",
        "/console/stats?from=2026-01-01&to=2099-12-31",
        f"/console/stats/compare?ids={send}&ids=999999",
        "/console/schedule",
        "/console/subscribers?status=unsubscribed",
        "/console/webhooks",
        "/console/account/2fa",
        f"/console/lists/{data['lists'][0]['id']}/welcome",
        f"/console/lists/{data['lists'][0]['id']}/welcome/{data['welcome_step']}",
    ]


# The screenshots in docs/ are refreshed on purpose (NEWSLETTER_UPDATE_SCREENSHOTS=1);
# an ordinary run takes none (54 pictures were a third of this test's time, and nothing
# looked at them).
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "pages"
    if os.environ.get("NEWSLETTER_UPDATE_SCREENSHOTS")
    else None
)


def _shot(page: Any, path: str, width: int) -> None:
    if SHOTS is None:
        return
    name = re.sub(r"[^a-z0-9]+", "-", path.removeprefix("/console").lower()).strip("-") or "home"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=width == 375)


def _axe(page: Any) -> list[str]:
    page.add_script_tag(content=AXE)
    res = page.evaluate("""() => axe.run({exclude: [["#preview"], ["#editor-preview"]]},
        {resultTypes: ["violations"]}).then(r => r.violations
        .filter(v => v.impact === "critical" || v.impact === "serious"
                || ["heading-order", "empty-table-header", "page-has-heading-one"].includes(v.id))
        .map(v => v.impact + " " + v.id + ": " + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", ")))""")
    return list(res)


def test_every_page_fits_a_phone_and_passes_axe(
    server: tuple[str, Settings, SinkHandler], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    base, _settings, _sink = server
    data = seed(tmp_path)
    from newsletter.web.console.services.welcome import add_welcome_step
    from tests.console.seed import principal

    step = add_welcome_step(
        principal("editor"),
        data["lists"][0]["id"],
        "---\ntitle: 欢迎订阅\n---\n\n感谢订阅。[往期](https://news.example.org/archive/)\n",
        "2 天后",
    )
    data["welcome_step"] = step["id"]
    problems: list[str] = []
    widths: dict[str, int] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            for width, lang, run_axe in (
                (375, "zh", True),
                (1366, "en", True),
                (375, "en", False),
                (1366, "zh", False),
            ):
                # axe is injected as a script; the console's CSP (script-src 'self') would
                # refuse it, so these contexts bypass CSP (the journeys test keeps it on).
                ctx = browser.new_context(
                    viewport={"width": width, "height": 800}, locale="zh-CN", bypass_csp=True
                )
                page = ctx.new_page()
                page.set_default_timeout(20_000)
                page.goto(f"{base}/console/login")
                if run_axe:
                    problems += [f"{width} {lang} login {v}" for v in _axe(page)]
                page.fill("input[name=username]", "admin")
                page.fill("input[name=password]", PASSWORDS["admin"])
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/console/")
                page.goto(f"{base}/console/lang?to={lang}&next=%2Fconsole%2F")
                for path in _pages(data):
                    page.goto(base + path)
                    page.wait_for_load_state("load")
                    where = f"{width} {lang} {path}"
                    if path.startswith("/console/editor/"):  # the live preview has drawn
                        page.wait_for_selector("#editor-status:has-text('·')", timeout=30_000)
                    if lang == "zh":  # every page at both widths, for docs/screenshots
                        _shot(page, path, width)
                    sw = page.evaluate("document.documentElement.scrollWidth")
                    widths[where] = sw
                    if sw > width:
                        problems.append(f"{where}: scrollWidth {sw}")
                    nav = page.evaluate(
                        "(() => { const n = document.querySelector('header.top nav');"
                        " return n ? n.getBoundingClientRect().height : 0 })()"
                    )
                    if nav > 48:
                        problems.append(f"{where}: navigation {nav:.0f} px high")
                    tall = page.evaluate("""Array.from(document.querySelectorAll('th, h1, h2, td.title'))
                        .filter(el => {
                          if (!el.offsetParent) { return false; }
                          const r = document.createRange(); r.selectNodeContents(el);
                          const tops = new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top)));
                          // a header cell on one line; a heading never with a line of 1-2 characters
                          if (el.tagName === 'TH') { return tops.size > 1; }
                          if (el.tagName === 'TD') { return el.getBoundingClientRect().width < 80; }
                          return tops.size > 1 && el.getBoundingClientRect().width < 60;
                        })
                        .map(el => el.textContent.trim())""")
                    if tall:
                        problems.append(f"{where}: header cells wrap: {tall[:3]}")
                    title = page.title()
                    lang_attr = page.get_attribute("html", "lang")
                    if not title or lang_attr != ("en" if lang == "en" else "zh-CN"):
                        problems.append(f"{where}: title {title!r} lang {lang_attr!r}")
                    if run_axe:
                        problems += [f"{where} {v}" for v in _axe(page)]
                ctx.close()
        finally:
            browser.close()
    print("scrollWidth at 375 px:", {k: v for k, v in widths.items() if k.startswith("375 zh")})
    assert len(widths) == 4 * len(_pages(data))
    assert not problems, "\n".join(problems)


def _luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_palette_contrast_on_grey_is_at_least_4_5() -> None:
    """Warning orange, success green, link blue, muted grey and red on the page's grey."""
    import re

    css = (
        Path(__file__).resolve().parents[2] / "newsletter" / "web" / "static" / "console.css"
    ).read_text(encoding="utf-8")
    var = dict(re.findall(r"--(\w+):(#[0-9a-fA-F]{6})", css))
    grey = _luminance(var["bg"])
    for name in ("amber", "green", "blue", "muted", "red", "ink"):
        fg = _luminance(var[name])
        ratio = (max(fg, grey) + 0.05) / (min(fg, grey) + 0.05)
        assert ratio >= 4.5, (name, var[name], round(ratio, 2))
