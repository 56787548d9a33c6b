"""Acceptance over the customer's real brief (a copy of ../shared/samples/real-brief-2021-08-02.txt).

Traditional text from a poor converter, page chrome, a hand-written contents
list, metadata values on the next line, 8 lines over 998 bytes.  It must work
end to end without hand edits, in every channel and both variants.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from newsletter.content.lint import lint_source
from newsletter.content.model import Issue
from newsletter.content.parser import parse_issue
from newsletter.content.textimport import TextImportResult, import_text
from newsletter.content.variants import convert_hans, convert_text, to_variant
from newsletter.render import render_all
from newsletter.render.context import RenderContext

REAL = Path(__file__).parent / "fixtures" / "real-brief-2021-08-02.txt"


def _ctx(doc: Issue) -> RenderContext:
    """The context the command line builds: names come from the (converted) issue."""
    return RenderContext(
        base_url="https://news.example.org",
        publication_name=doc.publication,
        publication_slug="weekly",
        postal_address="南京市示例路 1 号",
        sender_name=doc.source,
    )


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return REAL.read_text(encoding="utf-8").split("\n")


@pytest.fixture(scope="module")
def imported(lines: list[str]) -> TextImportResult:
    return import_text("\n".join(lines))


@pytest.fixture(scope="module")
def issue(imported: TextImportResult) -> Issue:
    return parse_issue(imported.markdown)


def test_header_fields(issue: Issue, imported: TextImportResult) -> None:
    assert issue.title == "國資國企改革新規與簡析周報"
    assert issue.period == "2021.08.02–2021.08.08"
    assert issue.source == "南京卓遠"
    assert issue.author == "國資業務三部"
    assert issue.number == 0  # the brief has none: a warning, not 第0期
    assert imported.script == "Hant" and issue.source_script == "Hant"


def test_sections_and_items_in_order(issue: Issue) -> None:
    assert [(s.numeral, s.title, len(s.items)) for s in issue.sections] == [
        ("一", "國資國企改革政策及簡析", 4),
        ("二", "國資相關新聞", 18),
    ]
    for s in issue.sections:
        assert [it.number for it in s.items] == list(range(1, len(s.items) + 1))
    policy, news = issue.sections
    assert policy.items[0].title == "國務院總理李克強簽署國務院令公布《建設工程抗震管理條例》"
    assert policy.items[3].title.startswith("重慶市人民政府關于印發重慶市制造業")
    assert news.items[0].title == "習近平主持中共中央政治局會議 分析研究當前經濟形勢和經濟工作"
    assert news.items[14].title.startswith("甯波市國資委召開")
    assert news.items[17].title == "廣西省自治區國企改革領導小組辦公室召開國企改革聯絡員會議"


def test_item_titles_match_the_contents_list(issue: Issue, imported: TextImportResult) -> None:
    listed = [re.sub(r"^\d+、", "", t).strip() for _, t in imported.contents]
    titles = [it.title for _, it in issue.iter_items()]
    for t in titles:
        assert t in listed


def test_first_policy_item_metadata_and_analysis(issue: Issue) -> None:
    first = issue.sections[0].items[0]
    assert first.meta_value("issuer") == "國務院辦公廳"
    assert first.meta_value("doc_number") == "國令第744号"
    assert first.meta_value("date") == "2021-08-04"
    assert first.meta_value("url") == (
        "http://www.gov.cn/zhengce/content/2021-08/04/content_5629341.htm"
    )
    for it in issue.sections[0].items:
        assert it.analysis_label == "政策簡析", it.title
        assert (
            it.analysis
            and it.meta_value(
                "url",
            )
            and it.meta_value("date")
        )
    assert issue.sections[0].items[3].meta_value("date") == "2021-08-03"  # key with no colon
    assert all(not it.meta for it in issue.sections[1].items)


def test_chrome_and_contents_reported_and_removed(
    lines: list[str], imported: TextImportResult
) -> None:
    chrome = dict(imported.chrome)
    for n in (1, 3, len(lines) - 1, len(lines)):
        assert n in chrome, (n, lines[n - 1])
    assert [lines[n - 1] for n in (len(lines) - 1, len(lines))] == ["Baidu", "sogou"]
    contents = dict(imported.contents)
    assert min(contents) == 12 and max(contents) == 60 and len(contents) == 1 + 2 + 22
    md = imported.markdown
    for text in [*chrome.values(), lines[11]]:
        assert text not in md
    assert "閱讀數" not in md and "Baidu" not in md and "sogou" not in md
    assert md.count("## 一、") == 1 and md.count("## 二、") == 1


def test_lint_has_no_errors(imported: TextImportResult) -> None:
    messages = lint_source(imported.markdown)
    assert [m for m in messages if m.level == "error"] == []
    assert any(m.code == "number-missing" for m in messages)


def _flat(s: str) -> str:
    """Visible text without tags, entities or white space."""
    s = re.sub(r"<(style|script)\b.*?</\1>", "", s, flags=re.S | re.I)
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]+>", "", s)))


def _paragraphs(imported: TextImportResult) -> list[tuple[str, list[str]]]:
    """``[(item heading line, [its body and analysis paragraphs])]`` from the outline."""
    out: list[tuple[str, list[str]]] = []
    for _n, cls, text in imported.outline:
        if cls == "item":
            out.append((re.sub(r"^\d+、", "", text).strip(), []))
        elif cls in ("body", "analysis") and out and not re.fullmatch(r"[丨|【】▍].*", text):
            out[-1][1].append(text)
    return out


@pytest.mark.parametrize("variant", ["zh-Hans", "zh-Hant"])
def test_every_paragraph_in_its_item_in_order_in_every_channel(
    variant: str, imported: TextImportResult, issue: Issue
) -> None:
    doc = to_variant(issue, variant)
    result = render_all(doc, _ctx(doc))
    conv = convert_hans if variant == "zh-Hans" else convert_text
    expected = _paragraphs(imported)
    assert len(expected) == 22 and sum(len(p) for _, p in expected) > 150
    channels = {
        "email": _flat(result.email.html),
        "text": _flat(result.email.text),
        "web": _flat(result.web),
        "wechat": _flat("".join(a.content for a in result.wechat)),
    }
    for name, flat in channels.items():
        pos = 0  # end of the previous item's last paragraph
        for title, paragraphs in expected:
            head = _flat(conv(title))
            first = flat.find(_flat(conv(paragraphs[0])), pos) if paragraphs else len(flat)
            # the item's heading sits between the previous item's text and its own
            at = flat.rfind(head, pos, first)
            assert at >= 0 and first >= 0, (name, variant, title)
            pos = at + len(head)
            for p in paragraphs:
                found = flat.find(_flat(conv(p)), pos)
                assert found >= pos, (name, variant, title, p[:40])
                pos = found + len(_flat(conv(p)))


def test_variants_are_clean(issue: Issue) -> None:
    import opencc

    hans_doc, hant_doc = to_variant(issue, "zh-Hans"), to_variant(issue, "zh-Hant")
    hans, hant = render_all(hans_doc, _ctx(hans_doc)), render_all(hant_doc, _ctx(hant_doc))
    t2s = opencc.OpenCC("t2s")
    for text in (hans.web, hans.email.text, *(a.content for a in hans.wechat)):
        # the link to the other edition is named in its own script
        visible = re.sub(r"<[^>]+>", "", text).replace("繁體", "")
        assert t2s.convert(visible) == visible
        assert "炼接" not in visible and "产业炼" not in visible
    assert "链接" in hans.web and 'lang="zh-CN"' in hans.web
    for text in (hant.web, hant.email.text, *(a.content for a in hant.wechat)):
        for wrong in ("最佳化", "迴圈", "關于", "甯", "關系", "産", "曆史"):
            assert wrong not in text, wrong
    assert "寧波" in hant.web and "關於" in hant.web and 'lang="zh-TW"' in hant.web
