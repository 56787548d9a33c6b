"""Real headless Chromium (Debian's, via Playwright): phone layout and anchors.

Screenshots land in docs/screenshots/ (email-phone.png, web-phone.png,
wechat-1.png) for a person to look at: glyphs, not tofu; a sane layout.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from newsletter.content.model import Issue
from newsletter.render.context import RenderContext
from newsletter.render.message import render_email
from newsletter.render.web import render_web
from newsletter.render.wechat import render_wechat

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# The screenshots in docs/ are refreshed on purpose (NEWSLETTER_UPDATE_SCREENSHOTS=1);
# an ordinary test run writes them under var/ and leaves the checkout clean.
SHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("NEWSLETTER_UPDATE_SCREENSHOTS")
    else ROOT / "var" / "screenshots"
)
PHONE = {"width": 375, "height": 812}

ANCHORS_JS = """() => {
  const out = [];
  for (const a of document.querySelectorAll('a[href^="#"]')) {
    const id = decodeURIComponent(a.getAttribute('href').slice(1));
    const el = document.getElementById(id) || document.querySelector(`a[name="${id}"]`);
    out.push([id, !!el]);
  }
  return out;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM.exists(), "Debian chromium missing: run scripts/install-system-deps.sh"
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=2)
    pg = ctx.new_page()
    # No network at all: the open pixel and remote images must not be fetched.
    pg.route("**/*", lambda route: route.abort())
    yield pg
    ctx.close()


def _load(page: Any, html: str) -> None:
    page.set_content(html, wait_until="domcontentloaded")
    page.evaluate("document.fonts.ready.then(() => true)")


def _as_received(html: str) -> str:
    """The message as one recipient sees it: slots filled like the delivery engine does."""
    return (
        html.replace("%%TOKEN%%", "t" * 40)
        .replace("%%UNSUB%%", "u" * 40)
        .replace("%%NAME%%", "王女士")
    )


def _scroll_width(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def test_full_email_on_a_phone(page: Any, small: Issue, ctx: RenderContext) -> None:
    em = render_email(small, ctx)
    assert em.mode == "full"
    _load(page, _as_received(em.html))
    assert _scroll_width(page) <= PHONE["width"]
    anchors = page.evaluate(ANCHORS_JS)
    assert len(anchors) >= len(small.iter_items()) + len(small.sections)
    assert all(ok for _, ok in anchors), [a for a, ok in anchors if not ok]
    # the responsive rule really applied: the 600 px container is now the viewport's width
    box = page.evaluate("document.querySelector('table.r-box').getBoundingClientRect().width")
    assert box <= PHONE["width"]
    # the preheader is hidden, the pixel is invisible
    assert page.evaluate("getComputedStyle(document.querySelector('body > div')).display") == "none"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "email-phone.png"))
    page.evaluate("location.hash = '#s1-i1'")
    page.screenshot(path=str(SHOTS / "email-phone-item.png"))


def test_digest_email_on_a_phone(page: Any, big_issue: Issue, ctx: RenderContext) -> None:
    em = render_email(big_issue, ctx)
    assert em.mode == "digest"
    _load(page, em.html)
    assert _scroll_width(page) <= PHONE["width"]
    assert all(ok for _, ok in page.evaluate(ANCHORS_JS))


def test_web_page_on_a_phone(page: Any, big_issue: Issue, ctx: RenderContext) -> None:
    _load(page, render_web(big_issue, ctx))
    assert _scroll_width(page) <= PHONE["width"]
    anchors = page.evaluate(ANCHORS_JS)
    assert len(anchors) == len(big_issue.iter_items()) + len(big_issue.sections)
    assert all(ok for _, ok in anchors)
    page.screenshot(path=str(SHOTS / "web-phone.png"))
    # jumping to an item anchor scrolls it into view
    page.evaluate("location.hash = '#s1-i2'")
    top = page.evaluate("document.getElementById('s1-i2').getBoundingClientRect().top")
    assert abs(top) < 40


def test_wechat_headline_on_a_phone(page: Any, big_issue: Issue, ctx: RenderContext) -> None:
    arts = render_wechat(big_issue, ctx)
    frame = (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body style="margin:0;padding:20px 16px;background:#fff;'
        'font-family:-apple-system,PingFang SC,Microsoft YaHei,sans-serif">'
        f'<h1 style="font-size:22px;line-height:1.4">{arts[0].title}</h1>'
        f"{arts[0].content}</body></html>"
    )
    _load(page, frame)
    assert _scroll_width(page) <= PHONE["width"]
    page.screenshot(path=str(SHOTS / "wechat-1.png"))
    _load(page, frame.replace(arts[0].content, arts[1].content))
    assert _scroll_width(page) <= PHONE["width"]
