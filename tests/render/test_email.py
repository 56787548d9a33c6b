"""Email rendition: budget and digest rule, slots, anchors, line length, text part."""

from __future__ import annotations

import re

import pytest
from conftest import make_ctx
from htmlcheck import Inspect

from newsletter.content.model import Issue
from newsletter.render.context import SLOT_MAX_LEN, SLOTS, RenderContext
from newsletter.render.email import render_email_html, worst_case_bytes
from newsletter.render.errors import EmailBudgetError
from newsletter.render.inline import inline_css
from newsletter.render.lines import LIMIT, max_line_octets
from newsletter.render.message import render_email

SLOT_DOC = """<!DOCTYPE html><html><head><style>
p{margin:0}.x{color:red}@media (max-width:620px){.r-a{width:100% !important}}
</style></head><body>
<img src="https://n.example.org/o/%%TOKEN%%.gif" width="1" height="1" alt="">
<p class="x">%%NAME%%，您好
<a href="https://n.example.org/c/%%TOKEN%%/3" title="%%NAME%%">链接</a></p>
<a href="https://n.example.org/u/%%UNSUB%%" class="r-a">退订</a>
<a href="https://n.example.org/p/%%UNSUB%%">设置</a>
</body></html>"""


def _filled(html: str) -> str:
    for name, ph in SLOTS.items():
        html = html.replace(ph, "x" * SLOT_MAX_LEN[name])
    return html


def test_slots_survive_premailer_unchanged() -> None:
    out = inline_css(SLOT_DOC)
    for ph in SLOTS.values():
        assert out.count(ph) == SLOT_DOC.count(ph), ph
    assert 'src="https://n.example.org/o/%%TOKEN%%.gif"' in out
    assert 'href="https://n.example.org/c/%%TOKEN%%/3"' in out
    assert 'href="https://n.example.org/u/%%UNSUB%%"' in out
    assert "%%NAME%%，您好" in out
    # inlined, @media kept in <head>, non-responsive classes dropped
    assert 'style="margin:0;color:red"' in out  # inlined and compacted
    head = out.split("</head>")[0]
    assert "@media" in head and ".r-a" in head
    assert 'class="x"' not in out and 'class="r-a"' in out


def test_big_issue_falls_back_to_digest_within_budget(big_issue: Issue, ctx: RenderContext) -> None:
    full_html, _ = render_email_html(big_issue, ctx, "full")
    full_worst = worst_case_bytes(full_html)
    em = render_email(big_issue, ctx)
    assert em.html_bytes_worst == len(_filled(em.html).encode())
    assert em.html_bytes_worst <= ctx.email_budget_bytes
    if full_worst <= ctx.email_budget_bytes:
        assert em.mode == "full"
    else:
        assert em.mode == "digest"
        assert em.reason.startswith("摘要版：") and " / digest:" in em.reason
        assert f"{full_worst:,}" in em.reason and f"{ctx.email_budget_bytes:,}" in em.reason
        assert f"{em.html_bytes_worst:,}" in em.reason


def test_generated_issue_is_realistic(big_issue: Issue) -> None:
    assert 26_000 <= big_issue.char_count() <= 32_000
    assert len(big_issue.iter_items()) == 19


def test_small_issue_is_full_with_everything(small: Issue, ctx: RenderContext) -> None:
    em = render_email(small, ctx)
    assert em.mode == "full" and em.reason.startswith("完整版：") and " / full:" in em.reason
    html = em.html
    for _, it in small.iter_items():
        assert it.title in html
    # open pixel right after the preheader, before any content
    pre = html.index(em.preheader)
    pixel = html.index(f"{ctx.base_url}/o/%%TOKEN%%.gif")
    assert pre < pixel < html.index(small.sections[0].items[0].title)
    assert html.index("<table", pre) > pixel
    # footer links and address
    assert f'href="{ctx.base_url}/u/%%UNSUB%%"' in html
    assert f'href="{ctx.base_url}/p/%%UNSUB%%"' in html
    assert f'href="{ctx.archive_url(small)}"' in html
    assert ctx.postal_address in html
    # CJK typography, 600 px table, responsive rule kept
    assert "PingFang SC" in html and "Microsoft YaHei" in html and "line-height:1.7" in html
    assert 'width="600"' in html
    assert re.search(r"@media[^{]*max-width:\s*620px", html)
    assert "overflow-wrap:break-word" in html
    # analysis block with its label, metadata table with 原文链接 as a link
    assert "政策简析" in html and "原文链接" in html and "查看原文" in html
    # every link is tracked, with positions from Issue.links
    ins = Inspect(html)
    tracked = [h for h in ins.hrefs if "/c/%%TOKEN%%/" in h]
    assert {int(h.rsplit("/", 1)[1]) for h in tracked} == set(em.link_ids)
    assert em.link_ids and set(em.link_ids) <= {lk.position for lk in small.links}
    external = [h for h in ins.hrefs if h.startswith("http") and ctx.base_url not in h]
    assert external == []


def test_click_tracking_off_keeps_original_urls(small: Issue) -> None:
    ctx = make_ctx(track_clicks=False, track_opens=False)
    em = render_email(small, ctx)
    assert "/c/%%TOKEN%%" not in em.html and "/c/%%TOKEN%%" not in em.text
    assert "/o/%%TOKEN%%" not in em.html
    for lk in small.links:
        assert lk.url in em.html


@pytest.mark.parametrize("which", ["small", "big_issue"])
def test_toc_anchors_resolve(
    which: str, request: pytest.FixtureRequest, ctx: RenderContext
) -> None:
    issue = request.getfixturevalue(which)
    em = render_email(issue, ctx)
    ins = Inspect(em.html)
    assert len(ins.fragments) >= len(issue.iter_items()) + len(issue.sections)
    for frag in ins.fragments:
        assert frag in ins.ids, frag
        assert frag in ins.names, frag  # <a name> too, for older clients
    assert "s1-i2" in ins.fragments


@pytest.mark.parametrize("which", ["small", "big_issue"])
def test_no_line_over_998_octets(
    which: str, request: pytest.FixtureRequest, ctx: RenderContext
) -> None:
    em = render_email(request.getfixturevalue(which), ctx)
    for part in (em.html, em.text):
        assert max_line_octets(part) <= LIMIT
        assert max(len(x.encode()) for x in _filled(part).split("\n")) <= LIMIT


def test_digest_content(big_issue: Issue, ctx: RenderContext) -> None:
    em = render_email(big_issue, ctx)
    assert em.mode == "digest"
    archive = ctx.archive_url(big_issue)
    for _s, it in big_issue.iter_items():
        assert it.title in em.html
        assert f'href="{archive}#{it.anchor}"' in em.html
    assert "阅读全文" in em.html and "阅读全文" in em.text
    first = big_issue.sections[0].items[1]  # has an explicit summary
    assert first.summary and first.summary in em.html
    assert first.summary in em.text.replace("\n", "")  # wrapped in text/plain
    assert em.link_ids == []


def test_even_digest_over_budget_raises(big_issue: Issue) -> None:
    with pytest.raises(EmailBudgetError, match="even the digest"):
        render_email(big_issue, make_ctx(email_budget_bytes=8_000))


def test_hant_variant(small: Issue, ctx: RenderContext) -> None:
    small.variant = "zh-Hant"
    em = render_email(small, ctx)
    assert '<html lang="zh-TW">' in em.html
    assert f"{ctx.base_url}/archive/weekly/47?v=zh-Hant" in em.html
    assert "PingFang TC" in em.html and "退訂" in em.html


def _order(haystack: str, needles: list[str]) -> list[int]:
    pos, out = 0, []
    for n in needles:
        pos = haystack.index(n, pos)
        out.append(pos)
    return out


@pytest.mark.parametrize("which", ["small", "big_issue"])
def test_text_part_has_every_title_in_html_order(
    which: str, request: pytest.FixtureRequest, ctx: RenderContext
) -> None:
    issue = request.getfixturevalue(which)
    em = render_email(issue, ctx)
    html_titles = Inspect(em.html).h3
    assert len(html_titles) == len(issue.iter_items())
    body = em.text.split("=" * 36, 1)[1]  # after the table of contents
    _order(body, html_titles)  # raises ValueError if one is missing or out of order
    assert em.text.count(f"{ctx.base_url}/u/%%UNSUB%%") == 1
    assert f"{ctx.base_url}/p/%%UNSUB%%" in em.text
    assert ctx.archive_url(issue) in em.text


def test_text_part_footnotes(small: Issue, ctx: RenderContext) -> None:
    em = render_email(small, ctx)
    text = em.text
    assert "查看原文[1]" in text and "政策解读[2]" in text
    urls = re.findall(r"^\[(\d+)\] (\S+)$", text, re.M)
    assert urls and all("/c/%%TOKEN%%/" in u for _, u in urls)
    positions = {int(u.rsplit("/", 1)[1]) for _, u in urls}
    assert positions == {lk.position for lk in small.links}
    assert "<" not in text.replace("<-", "")  # no HTML leaked into text/plain
