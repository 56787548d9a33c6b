"""Briefs in house styles other than the customer's: each fixture's outline and structure.

The fixtures in ``fixtures/styles`` were written for these tests, one per
family of conventions (see newsletter/resources/data/import-patterns.yaml).  Each has a
``.outline`` file: the expected class of every non-blank line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.content.model import Issue
from newsletter.content.parser import parse_issue
from newsletter.content.textimport import TextImportError, import_text
from newsletter.content.variants import to_variant
from newsletter.render import render_all
from newsletter.render.context import RenderContext

STYLES = Path(__file__).parent / "fixtures" / "styles"
FIXTURES = sorted(p.stem for p in STYLES.glob("*.txt"))


def _issue(name: str) -> Issue:
    text = (STYLES / f"{name}.txt").read_text(encoding="utf-8")
    return parse_issue(import_text(text).markdown)


def _outline(name: str) -> list[str]:
    raw = (STYLES / f"{name}.outline").read_text(encoding="utf-8").splitlines()
    return [line for line in raw if line and not line.startswith("#")]


def test_there_are_at_least_four_house_styles() -> None:
    assert len(FIXTURES) >= 4


@pytest.mark.parametrize("name", FIXTURES)
def test_outline_matches_the_expected_one(name: str) -> None:
    text = (STYLES / f"{name}.txt").read_text(encoding="utf-8")
    result = import_text(text)
    got = [f"{n} {cls}" for n, cls, _ in result.outline if cls != "blank"]
    assert got == _outline(name)


@pytest.mark.parametrize("name", FIXTURES)
def test_renders_in_every_channel_and_both_variants(name: str) -> None:
    issue = _issue(name)
    for variant in ("zh-Hans", "zh-Hant"):
        doc = to_variant(issue, variant)
        ctx = RenderContext(
            base_url="https://news.example.org",
            publication_name=doc.publication,
            publication_slug="weekly",
            postal_address="示例路 1 号",
            sender_name=doc.source or doc.title,
        )
        result = render_all(doc, ctx)
        assert result.email.html and result.email.text and result.web and result.wechat
        for _, it in doc.iter_items():
            assert it.title in result.web


def test_part_sections_with_paren_items_traditional() -> None:
    issue = _issue("part-paren-hant")
    assert (issue.title, issue.number, issue.source_script) == ("產業政策觀察", 37, "Hant")
    assert [(s.title, len(s.items)) for s in issue.sections] == [("政策速遞", 2), ("地方動態", 3)]
    first = issue.sections[0].items[0]
    assert first.meta_value("issuer") == "工業和信息化部"
    assert first.meta_value("doc_number") == "工信部聯節〔2022〕9號"
    assert first.meta_value("date") == "2022年1月27日"
    assert first.meta_value(
        "url",
    ) == ("https://www.miit.gov.cn/zwgk/zcwj/wjfb/tz/art/2022/art_0127.html")
    assert first.analysis_label == "專家解讀" and len(first.analysis) == 2
    # unknown-to-the-parser key kept as a row; the numbered list stays in the text
    shenzhen = issue.sections[1].items[0]
    assert [(m.key, m.value) for m in shenzhen.meta] == [("來源", "深圳市工業和信息化局")]
    assert [b.text for b in shenzhen.body][1:] == [
        "1. 建設數字經濟産業集聚區；",
        "2. 培育一批數字化轉型服務商；",
        "3. 完善數據要素市場。",
    ]
    hans = to_variant(issue, "zh-Hans")
    assert "产业链" in hans.sections[0].items[0].analysis[0].text
    assert "补链强链" in hans.sections[0].items[0].analysis[0].text


def test_arabic_sections_with_paren_items_simplified() -> None:
    issue = _issue("arabic-paren-hans")
    assert (issue.title, issue.number, issue.source_script) == ("数字经济周报", 12, "Hans")
    assert issue.period == "2024年3月4日至3月10日"
    assert (issue.source, issue.author) == ("某某数字经济研究所", "王晓明")
    assert issue.preheader.startswith("本周两部门")
    assert [(s.title, len(s.items)) for s in issue.sections] == [("政策文件", 2), ("地方动态", 2)]
    first, second = issue.sections[0].items
    assert first.analysis_label == "点评" and second.analysis_label == "专家点评"
    assert [b.text for b in first.body][-3:] == [
        "① 提升数据供给水平；",
        "② 优化数据流通环境；",
        "③ 加强数据安全保障。",
    ]
    assert second.meta_value("url") == (
        "https://www.miit.gov.cn/zwgk/zcwj/wjfb/tz/art/2024/art_0222.html"
    )


def test_chapter_sections_with_circled_items() -> None:
    issue = _issue("chapter-circled-hant")
    assert (issue.title, issue.number, issue.period) == (
        "金融監管週報",
        58,
        "2023.05.08–2023.05.14",
    )
    assert [(s.title, len(s.items)) for s in issue.sections] == [("監管動態", 2), ("市場要聞", 2)]
    first, second = issue.sections[0].items
    assert first.analysis_label == "解讀"
    assert first.analysis[0].text.startswith("新機構統籌負責")
    assert second.analysis_label == "點評"
    assert first.meta_value("url") == "https://www.nfra.gov.cn/cn/view/pages/index.html"


def test_markdownish_paste() -> None:
    issue = _issue("markdownish-hans")
    assert (issue.title, issue.number) == ("绿色低碳政策简报", 5)
    assert issue.preheader == "本期聚焦碳市场扩容与绿色金融。"
    assert [(s.title, len(s.items)) for s in issue.sections] == [("政策文件", 2), ("行业动态", 1)]
    first = issue.sections[0].items[0]
    assert first.meta_value("doc_number") == "环办气候函〔2024〕2号"
    assert first.analysis_label == "政策解读"


# --------------------------------------------------------------------------- arbitrary text

_ALPHABET = st.sampled_from(
    list("一二三四五六七八九十、（）()①②③：:|丨【】▍>》 \t\n.-0123456789目录錄第部分章期年")
    + list("政策简析點評链接發文機關周報的了是在有和http://x.cn/a")
    + list("甲乙丙㈠㈡⑴⑵⒈—━ivxAB｜·　；星期二总VolNo.Issuer:我们认为💡◆◇发文号日")
) | st.characters(blacklist_categories=("Cs",))
#: Pieces of the shapes the importer reads (fields, lead-ins, number lines, header
#: tokens), mixed with arbitrary text.
_PIECES = st.sampled_from(
    ["发文机关：", "　文号：", "；日期：", "点评：", "【点评】", "—01—\n", "2026年12月1日",
     " 星期二 ", "第228期", "  ", "\n", "Vol. 3 | ", "Issuer: ", "我们认为：", "1.1 ", "A1 "]
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(_ALPHABET, max_size=400))
def test_arbitrary_text_imports_or_fails_clearly(text: str) -> None:
    _imports_or_fails_clearly(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES | st.text(_ALPHABET, max_size=12), max_size=80).map("".join))
def test_shapes_mixed_with_arbitrary_text_lose_nothing(text: str) -> None:
    _imports_or_fails_clearly(text)


def _imports_or_fails_clearly(text: str) -> None:
    try:
        result = import_text(text)
    except TextImportError as exc:
        assert "nothing to import" in str(exc)
        return
    issue = parse_issue(result.markdown)  # never raises: the output is always valid
    placed = re.sub(r"\s+", "", _all_text(issue))
    for _n, cls, line in result.outline:
        if cls in ("body", "analysis", "summary"):
            words = re.sub(r"\s+", "", line)
            # a paragraph's visible characters all arrive, in order
            assert _subsequence(_visible(words), placed), (cls, line)


def _visible(s: str) -> str:
    return re.sub(r"[\\`*_\[\]<>#|~&!丨【】▍:：]", "", s)


def _subsequence(needle: str, hay: str) -> bool:
    it = iter(hay)
    return all(ch in it for ch in needle)


def _all_text(issue: Issue) -> str:
    parts = [issue.title, issue.preheader, *(b.text for b in issue.intro)]
    for s in issue.sections:
        parts += [s.title, *(b.text for b in s.intro)]
        for it in s.items:
            parts += [it.title, *(f"{m.key}{m.value}" for m in it.meta)]
            parts += [b.text for b in it.body]
            parts += [it.analysis_label or "", *(b.text for b in it.analysis), it.summary or ""]
            parts += ["".join(r for row in b.rows for r in row) for b in it.body]
    parts += ["".join(r for row in b.rows for r in row) for s in issue.sections for b in s.intro]
    return "".join(_visible(p) for p in parts)


def test_bracketed_keys_and_a_paged_contents_list() -> None:
    issue = _issue("bracket-keys-hans")
    assert (issue.title, issue.number, issue.date) == ("《营商环境观察》", 0, "2022-03-01 10:00")
    assert [(s.title, len(s.items)) for s in issue.sections] == [("政策解读", 2), ("地方实践", 1)]
    first = issue.sections[0].items[0]
    assert first.meta_value("issuer") == "国务院"
    assert first.meta_value("doc_number") == "国发〔2021〕24号"
    assert first.analysis_label == "简析"


def test_formal_numerals_give_sections() -> None:
    text = (
        "經濟部產業週報\n第 105 期\n出刊日期：2023/06/12\n"
        "壹、政策焦點\n一、經濟部公告中小企業數位轉型補助\n補助上限新臺幣一百萬元。\n"
        "二、國發會發布產業人才報告\n報告指出人才缺口持續擴大。\n"
        "貳、產業動態\n一、半導體出口創新高\n五月出口年增百分之十五。\n"
    )
    issue = parse_issue(import_text(text).markdown)
    assert (issue.title, issue.number, issue.date) == ("經濟部產業週報", 105, "2023/06/12")
    assert [(s.title, len(s.items)) for s in issue.sections] == [("政策焦點", 2), ("產業動態", 1)]


def test_an_unnumbered_preview_never_links_to_issue_0() -> None:
    issue = parse_issue(import_text("某某周报\n一、要闻\n1、甲\n正文\n").markdown)
    ctx = RenderContext(
        base_url="https://news.example.org",
        publication_name="某某周报",
        publication_slug="weekly",
        postal_address="示例路 1 号",
        sender_name="某某",
    )
    result = render_all(issue, ctx)
    for text in (result.email.html, result.email.text, result.web, result.email.subject):
        assert "/archive/weekly/0" not in text and "第0期" not in text
    assert "/archive/weekly/draft-" in result.web


def test_unnumbered_contents_entries_under_a_contents_heading() -> None:
    text = (
        "科技政策周刊\n第21期\n本期目录\n人工智能治理\n数据跨境流动\n"
        "一、人工智能治理\n1、网信办发布生成式人工智能服务管理办法\n办法自8月15日起施行。\n"
        "二、数据跨境流动\n1、数据出境安全评估申报指南（第二版）发布\n指南简化了申报材料。\n"
    )
    result = import_text(text)
    assert [n for n, _ in result.contents] == [3, 4, 5]
    issue = parse_issue(result.markdown)
    assert issue.intro == []
    assert [(s.title, len(s.items)) for s in issue.sections] == [
        ("人工智能治理", 1),
        ("数据跨境流动", 1),
    ]


def test_a_second_different_header_value_stays_as_text() -> None:
    text = "周报\n来源：甲研究院\n来源：乙研究院（合作）\n期数：第N期\n一、要闻\n1、甲\n正文\n"
    result = import_text(text)
    issue = parse_issue(result.markdown)
    assert issue.source == "甲研究院"
    assert [b.text for b in issue.intro] == ["来源：乙研究院（合作）", "期数：第N期"]
    assert any("cannot read an issue number" in w for w in result.warnings)
