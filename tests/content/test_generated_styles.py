"""Generated briefs in many house styles: the structure comes back whole.

Each example combines a numbering pair (sections / items), optional page
chrome, an optional hand-written contents list, metadata lines (the URL on
its own line or after its key), analysis markers of several families and
either script; the import must find exactly the sections and items written.
"""

from __future__ import annotations

from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.content.numerals import format_numeral
from newsletter.content.parser import parse_issue
from newsletter.content.textimport import import_text

CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩"
FORMAL = "壹贰叁肆伍陆柒捌玖拾"
SECTION_STYLES = {
    "part": lambda k: f"第{format_numeral(k)}部分 ",
    "chapter": lambda k: f"第{format_numeral(k)}章 ",
    "formal": lambda k: f"{FORMAL[k - 1]}、",
    "cn": lambda k: f"{format_numeral(k)}、",
    "arabic": lambda k: f"{k}、",
}
ITEM_STYLES = {
    "cn": lambda k: f"{format_numeral(k)}、",
    "cn-paren": lambda k: f"（{format_numeral(k)}）",
    "arabic": lambda k: f"{k}、",
    "arabic-dot": lambda k: f"{k}. ",
    "arabic-paren": lambda k: f"({k})",
    "circled": lambda k: CIRCLED[k - 1],
}
RANK = {
    "part": 10,
    "chapter": 10,
    "formal": 15,
    "cn": 20,
    "cn-paren": 30,
    "arabic": 40,
    "arabic-dot": 40,
    "arabic-paren": 50,
    "circled": 60,
}
WORDS = [
    "数字经济",
    "营商环境",
    "国企改革",
    "绿色金融",
    "科技创新",
    "人才发展",
    "区域协调",
    "对外开放",
    "乡村振兴",
    "产业升级",
    "数据要素",
    "财政政策",
    "货币政策",
    "民营经济",
]
VERBS = ["推进", "部署", "印发", "发布", "召开", "开展", "出台", "启动"]
CHROME = [
    "首页 > 研究 > 周报 > 正文",
    "阅读数：1234",
    "【字号：大 中 小】",
    "分享到：微信 微博",
    "上一篇：某某周报第9期",
    "版权所有 © 某研究院 京ICP备00000000号",
    "Baidu",
]
MARKERS = ["丨政策简析丨", "【点评】", "▍专家解读", "【政策解读】"]


@cache
def _s2t(text: str) -> str:
    from newsletter.content.script import to_hant

    return to_hant(text)


@st.composite
def briefs(draw: st.DrawFn) -> tuple[str, list[tuple[str, list[str]]]]:
    pairs = [(s, i) for s in SECTION_STYLES for i in ITEM_STYLES if RANK[i] > RANK[s]]
    sec_style, item_style = draw(st.sampled_from(pairs))
    n_sections = draw(st.integers(1, 3))
    pool = iter(draw(st.permutations(range(len(WORDS) * len(VERBS)))))
    structure: list[tuple[str, list[str]]] = []
    for k in range(1, n_sections + 1):
        items = [
            f"{WORDS[x % len(WORDS)]}{VERBS[x // len(WORDS)]}新举措第{k}{j}号"
            for j, x in zip(range(draw(st.integers(1, 5))), pool, strict=False)
        ]
        structure.append((f"{WORDS[(k * 5) % len(WORDS)]}专栏{k}", items))
    lines: list[str] = []
    if draw(st.booleans()):
        lines += draw(st.lists(st.sampled_from(CHROME[:3]), max_size=2))
    lines += ["政策观察周报", "第7期", "来源：某研究院", ""]
    if draw(st.booleans()):  # a hand-written contents list
        lines += ["本 期 目 录"]
        for k, (title, items) in enumerate(structure, 1):
            lines.append(SECTION_STYLES[sec_style](k) + title)
            lines += [ITEM_STYLES[item_style](j) + t for j, t in enumerate(items, 1)]
        lines.append("")
    for k, (title, items) in enumerate(structure, 1):
        lines += [SECTION_STYLES[sec_style](k) + title, ""]
        for j, t in enumerate(items, 1):
            lines.append(ITEM_STYLES[item_style](j) + t)
            if draw(st.booleans()):
                lines += ["发文机关：国务院办公厅", "文  号：国办发〔2024〕1号"]
                url = f"https://www.gov.cn/zhengce/{k}{j}.htm"
                lines += ["原文链接：", url] if draw(st.booleans()) else [f"原文链接：{url}"]
            lines += ["这是正文的第一段，介绍有关情况。", "", "这是正文的第二段。"]
            if draw(st.booleans()):
                lines += [draw(st.sampled_from(MARKERS)), "这是一段分析。"]
            lines.append("")
    if draw(st.booleans()):
        lines += draw(st.lists(st.sampled_from(CHROME[3:]), max_size=3))
    if draw(st.booleans()):  # pasted from Markdown: section headings marked
        heads = {SECTION_STYLES[sec_style](k) + t for k, (t, _) in enumerate(structure, 1)}
        lines = [f"## {ln}" if ln in heads else ln for ln in lines]
    if draw(st.booleans()):  # pasted with full-width digits and brackets
        wide = str.maketrans("0123456789().", "０１２３４５６７８９（）．")
        lines = [ln if ln.startswith(("原文", "https")) else ln.translate(wide) for ln in lines]
        structure = [
            (t.translate(wide), [i.translate(wide) for i in items]) for t, items in structure
        ]
    text = "\n".join(lines)
    if draw(st.booleans()):  # the same brief in Traditional script
        text = _s2t(text)
        structure = [(_s2t(t), [_s2t(i) for i in items]) for t, items in structure]
    return text, structure


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(briefs())
def test_generated_brief_structure_comes_back(
    brief: tuple[str, list[tuple[str, list[str]]]],
) -> None:
    text, structure = brief
    result = import_text(text)
    issue = parse_issue(result.markdown)
    got = [(s.title, [it.title for it in s.items]) for s in issue.sections]
    assert got == structure, result.outline
    assert issue.number == 7
    for _, it in issue.iter_items():
        if it.meta:
            assert it.meta_value("issuer") and it.meta_value(
                "url",
            ).startswith("https://")
