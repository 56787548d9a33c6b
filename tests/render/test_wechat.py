"""WeChat articles: limits, inline styles only, numbered references, split rules."""

from __future__ import annotations

import re

import pytest
from conftest import make_ctx
from htmlcheck import Inspect
from render_factory import make_issue

from newsletter.content.model import Issue
from newsletter.render.context import RenderContext
from newsletter.render.errors import WeChatLimitError
from newsletter.render.wechat import render_wechat


def _check_limits(arts: list, limit: int = 20_000) -> None:
    assert 1 <= len(arts) <= 8
    for a in arts:
        assert len(a.content) < limit and a.char_count == len(a.content)
        assert len(a.content.encode()) < 1_000_000
        assert len(a.title) <= 64 and len(a.digest) <= 120 and len(a.author) <= 8
        low = a.content.lower()
        assert "<style" not in low and "<script" not in low
        ins = Inspect(a.content)
        assert not [k for k, _ in ins.attrs if k in ("class", "id")]
        assert "%%" not in a.content  # never per-recipient slots


def test_big_issue_articles_respect_limits(big_issue: Issue, ctx: RenderContext) -> None:
    arts = render_wechat(big_issue, ctx)
    _check_limits(arts)
    head = arts[0]
    assert head.title.startswith(big_issue.title)
    for _, it in big_issue.iter_items():  # full table of contents in the headline
        assert it.title in head.content
        assert sum(it.title in a.content for a in arts[1:]) == 1  # each item exactly once
    assert head.content_source_url == ctx.archive_url(big_issue)
    for a in arts[1:]:
        assert a.content_source_url.startswith(ctx.archive_url(big_issue) + "#s")


def test_links_become_numbered_references(big_issue: Issue, ctx: RenderContext) -> None:
    arts = render_wechat(big_issue, ctx)
    urls = {lk.url for lk in big_issue.links}
    seen: set[str] = set()
    for a in arts:
        ins = Inspect(a.content)
        assert [h for h in ins.hrefs if h.startswith("http")] == []  # nothing clickable
        refs = re.findall(r'<p style="[^"]*">\[(\d+)\] (\S+)</p>', a.content)
        assert [int(n) for n, _ in refs] == list(range(1, len(refs) + 1))
        markers = set(re.findall(r"\[(\d+)\]", a.content))
        assert {n for n, _ in refs} <= markers
        seen |= {u for _, u in refs}
    assert urls <= seen  # every link of the issue is listed somewhere


def test_images_use_wxasset(big_issue: Issue, ctx: RenderContext) -> None:
    arts = render_wechat(big_issue, ctx)
    img = big_issue.images[0]
    holder = [a for a in arts if img.sha256 in a.image_hashes]
    assert len(holder) == 1
    assert f'src="wxasset:{img.sha256}"' in holder[0].content


def test_section_over_limit_is_split_by_items(big_issue: Issue) -> None:
    ctx = make_ctx(wechat_max_chars=9_000)
    arts = render_wechat(big_issue, ctx)
    _check_limits(arts, 9_000)
    parts = [a for a in arts if a.title.startswith("一、政策法规（")]
    assert len(parts) >= 2 and "（1/" in parts[0].title
    assert "（续）" in parts[1].content


def test_small_issue_one_article_per_section(small: Issue, ctx: RenderContext) -> None:
    arts = render_wechat(small, ctx)
    assert len(arts) == 1 + len(small.sections)
    for a, s in zip(arts[1:], small.sections, strict=True):
        assert a.title.startswith(f"{s.numeral}、{s.title}")


def test_too_many_articles_is_a_clear_error() -> None:
    issue = make_issue(policy_items=9, news_items=2, policy_analysis=4_000)
    with pytest.raises(WeChatLimitError, match="at most 8"):
        render_wechat(issue, make_ctx(wechat_max_chars=9_200))


def test_an_item_too_long_for_one_article_continues_at_paragraph_boundaries() -> None:
    issue = make_issue(policy_items=1, news_items=2, policy_analysis=24_000)
    item = issue.sections[0].items[0]
    articles = render_wechat(issue, make_ctx())
    assert 3 <= len(articles) <= 8
    holding = [a for a in articles[1:] if item.title in a.content]  # [0] is the headline
    assert len(holding) >= 2
    assert all(a.char_count < 20_000 for a in articles)
    # every analysis paragraph is there once, whole, in order, across the parts
    joined = "".join(a.content for a in holding)
    positions = [joined.find(b.html) for b in item.analysis]
    assert -1 not in positions and positions == sorted(positions)
    assert f"{item.title}（续）" in holding[1].content
    assert "发布机构" in holding[0].content and "发布机构" not in holding[1].content


def test_one_paragraph_too_long_is_a_clear_error() -> None:
    issue = make_issue(policy_items=1, news_items=2)
    item = issue.sections[0].items[0]
    item.analysis[0].html = item.analysis[0].text = "很长的一段。" * 4_000
    with pytest.raises(WeChatLimitError, match=r"a paragraph of item .* alone is"):
        render_wechat(issue, make_ctx())


def test_long_author_and_title_are_truncated(small: Issue, ctx: RenderContext) -> None:
    small.author = "林晓、王明、张三丰、李四"
    small.title = "营商环境政策周报" * 10
    arts = render_wechat(small, ctx)
    _check_limits(arts)
    assert arts[0].author == "林晓、王明等"
    assert arts[0].title.endswith("…")


def test_one_url_has_one_footnote_number() -> None:
    """A URL cited in two items of an article is one reference, with one number."""
    from newsletter.content.parser import parse_issue

    src = (
        "---\ntitle: 测试周报\nnumber: 3\nperiod: 2026年11月16日—11月22日\npublication: 测试周报\n"
        "---\n\n导语。\n\n## 一、政策法规\n\n### 1. 第一条\n\n"
        "正文引用[同一个链接](https://www.gov.cn/a.htm)和[另一个](https://www.gov.cn/b.htm)。\n\n"
        "### 2. 第二条\n\n再次引用[同一个链接](https://www.gov.cn/a.htm)。\n"
    )
    ctx = RenderContext(
        base_url="https://news.example.org",
        publication_name="测试周报",
        publication_slug="t",
        postal_address="地址",
        sender_name="测试",
        track_opens=True,
        track_clicks=True,
        email_budget_bytes=100_000,
    )
    art = render_wechat(parse_issue(src), ctx)[1]
    cited = [int(n) for n in re.findall(r">\[(\d+)\]</sup>", art.content)]
    assert cited == [1, 2, 1]
    assert art.content.count("https://www.gov.cn/a.htm") == 1  # listed once in the notes
    assert art.content.count("https://www.gov.cn/b.htm") == 1


def test_every_article_leads_to_the_email_edition() -> None:
    issue = make_issue(policy_items=3, news_items=2, policy_analysis=8_000)
    ctx = make_ctx()
    articles = render_wechat(issue, ctx)
    assert len(articles) >= 3
    for a in articles:
        assert ctx.subscribe_url() in a.content
        assert a.char_count < ctx.wechat_max_chars


def test_a_section_of_intro_only_too_long_is_a_clear_error() -> None:
    # An unclosed code fence (typed in the editor) swallows every item into the
    # section's introduction: a clear limit error, never an IndexError.
    from newsletter.content.parser import parse_issue

    src = (
        "---\ntitle: 周报\nnumber: 3\npublication: 周报\n---\n\n## 一、政策法规\n\n```\n"
        + "很长的一行。\n" * 5_000
        + "\n### 1. 条目\n\n正文。\n"
    )
    issue = parse_issue(src)
    assert issue.sections and not issue.sections[0].items
    with pytest.raises(WeChatLimitError, match="alone is"):
        render_wechat(issue, make_ctx())
