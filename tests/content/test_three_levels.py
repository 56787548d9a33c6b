"""Briefs with a level above the sections (第一部分 › 一、 › 1., Part I › (一) › ①): the
deepest numbered level that carries the item fields is the items, the one above it the
sections, and the top level names groups of sections; its name goes in front of each of
its sections' titles, and the sections are numbered through the whole issue. Nothing is
dropped: every heading's words are in the output."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.content.parser import parse_issue
from newsletter.content.textimport import import_text

_STYLES = {
    "parts": (
        "第{n}部分 {t}",
        "{n}、{t}",
        "{i}. {t}",
        "发布机构：{body}",
        "发布日期：2026年12月{d}日",
    ),
    "chapters": (
        "第{n}章　{t}",
        "（{n}）{t}",
        "{i}）{t}",
        "【发文机关】{body}",
        "【成文日期】2026-12-0{d}",
    ),
    "circled": (
        "{N}、{t}",
        "（{n}）{t}",
        "{c} {t}",
        "文号：{body}〔2026〕{d}号",
        "日期：2026年12月{d}日",
    ),
}
_CN = "一二三四五六七八九"
_CIRCLED = "①②③④⑤⑥⑦⑧⑨"
_PARTS = {"国内动态": {"数据安全": 2, "个人信息保护": 1}, "国际动态": {"欧盟": 2, "美国": 1}}


def _brief(style: str) -> tuple[str, list[tuple[str, list[str]]]]:
    top, mid, low, f1, f2 = _STYLES[style]
    out = ["合规观察周报", "第7期 2026年12月1日—12月7日", ""]
    expected: list[tuple[str, list[str]]] = []
    d = itertools.count(1)
    for p, (part, sections) in enumerate(_PARTS.items()):
        out.append(top.format(n=_CN[p], N=_CN[p], t=part))
        for s, (section, items) in enumerate(sections.items()):
            out.append(mid.format(n=_CN[s], t=section))
            titles = []
            for i in range(items):
                title = f"{section}事项{i + 1}的通知"
                day = next(d)
                out += [low.format(i=i + 1, c=_CIRCLED[i], t=title),
                        f1.format(body=f"机关{day}", d=day), f2.format(d=day), "解读：影响有限。"]  # fmt: skip
                titles.append(title)
            expected.append((f"{part}｜{section}", titles))
    return "\n".join(out) + "\n", expected


@pytest.mark.parametrize("style", sorted(_STYLES))
def test_three_levels_become_grouped_sections_and_items(style: str) -> None:
    text, expected = _brief(style)
    doc = parse_issue(import_text(text).markdown)
    got = [(s.title, [it.title for it in s.items]) for s in doc.sections]
    assert got == expected
    assert [s.number for s in doc.sections] == list(range(1, len(expected) + 1))
    first = doc.sections[0].items[0]
    assert len(first.meta) == 2 and first.analysis_label and first.analysis


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.sampled_from(["甲", "乙", "政策", "法规", "通知", "动态"]),
        min_size=1,
        max_size=3,
        unique=True,
    )
)
def test_a_two_level_brief_stays_two_levels(words: list[str]) -> None:
    """Without a third numbered level, nothing is regrouped: sections keep their titles."""
    lines = ["周报", "第3期 2026年12月1日", ""]
    for s, w in enumerate(words):
        lines += [f"{_CN[s]}、{w}栏目", f"1. {w}事项", "发布机构：某机关", "解读：略。"]
    doc = parse_issue(import_text("\n".join(lines) + "\n").markdown)
    assert [s.title for s in doc.sections] == [f"{w}栏目" for w in words]


_RUN_ON = """政策周报 第12期
2026-12-07

第一部分 宏观政策
本部分导语：第一部分的引言。

一、财政
1. 财政部发布新规
来源：财政部
发布时间：2026-12-01
正文一段。

二、货币
1. 央行降准
来源：人民银行
发布时间：2026-12-03
正文三段。

第二部分 行业动态
第二部分导语。

三、能源行业的重大政策调整与后续影响分析
1. 能源局规划
来源：能源局
发布时间：2026-12-04
正文四段。

四、交通
1. 交通部通知
来源：交通部
发布时间：2026-12-05
正文五段。
"""


def test_sections_numbered_on_through_the_parts_and_part_intros_kept() -> None:
    """Sections may be numbered on across the groups (三、 under 第二部分) whatever the
    length of their titles; the text between a group heading and its first section is
    that section's intro, never the previous item's body; a lone dash date is a date."""
    result = import_text(_RUN_ON)
    doc = parse_issue(result.markdown)
    assert [s.title for s in doc.sections] == [
        "宏观政策｜财政", "宏观政策｜货币",
        "行业动态｜能源行业的重大政策调整与后续影响分析", "行业动态｜交通",
    ]  # fmt: skip
    assert [[it.title for it in s.items] for s in doc.sections] == [
        ["财政部发布新规"], ["央行降准"], ["能源局规划"], ["交通部通知"]]  # fmt: skip
    assert [len(it.meta) for s in doc.sections for it in s.items] == [2, 2, 2, 2]
    assert "引言" in result.markdown.split("## 一、")[1].split("###")[0]
    assert "第二部分导语" in result.markdown.split("## 三、")[1].split("###")[0]
    assert not [w for w in result.warnings if "3" in w or "4" in w]  # no "3 follows 0"
    assert doc.date == "2026-12-07" and not doc.period
