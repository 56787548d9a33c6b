"""The web-archive page: standalone, complete, anchors shared with the email."""

from __future__ import annotations

from htmlcheck import Inspect

from newsletter.content.model import Issue
from newsletter.render.context import RenderContext
from newsletter.render.email import render_email_html
from newsletter.render.web import render_web


def test_web_page_is_complete_and_standalone(big_issue: Issue, ctx: RenderContext) -> None:
    page = render_web(big_issue, ctx)
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert page.count("<style>") == 1 and "<script" not in page.lower()
    assert 'rel="stylesheet"' not in page and "@import" not in page and "@font-face" not in page
    for _, it in big_issue.iter_items():
        assert it.title in page
    for b in big_issue.sections[0].items[0].analysis:
        if b.kind == "paragraph":
            assert b.text in page  # full content, not a digest
    for lk in big_issue.links:
        assert lk.url in page  # original URLs, never tracked
    assert "%%" not in page


def test_web_anchors_match_the_email(small: Issue, ctx: RenderContext) -> None:
    page = Inspect(render_web(small, ctx))
    mail = Inspect(render_email_html(small, ctx, "full")[0])
    assert set(mail.fragments) <= page.ids
    assert set(page.fragments) <= page.ids


def test_variant_switch(small: Issue, ctx: RenderContext) -> None:
    page = render_web(small, ctx)
    assert f'href="{ctx.base_url}/archive/weekly/47?v=zh-Hant"' in page and "繁體" in page
    small.variant = "zh-Hant"
    page = render_web(small, ctx)
    assert '<html lang="zh-TW">' in page
    assert f'href="{ctx.base_url}/archive/weekly/47"' in page and "简体" in page
