from __future__ import annotations

import pytest

from newsletter.content.parser import parse_issue
from newsletter.content.textimport import import_text

from .conftest import BRIEF


@pytest.fixture(scope="module")
def brief_lines() -> list[str]:
    return BRIEF.read_text(encoding="utf-8").splitlines()


def test_brief_imports_into_a_valid_issue(brief_lines: list[str]) -> None:
    result = import_text("\n".join(brief_lines))
    issue = parse_issue(result.markdown)
    assert issue.title == "营商环境与数字经济政策周报"
    assert issue.number == 48
    assert issue.period == "2026年11月23日—11月29日"
    assert issue.source == "示例研究院政策研究室"
    assert issue.author == "周亦凡"
    assert issue.preheader.startswith("本期关注")
    assert [(s.numeral, s.title, len(s.items)) for s in issue.sections] == [
        ("一", "政策法规", 3),
        ("二", "要闻速览", 8),
    ]
    assert issue.intro and issue.intro[0].text.startswith("本周三份重点文件")
    assert result.unplaced == []


def test_policy_items_have_meta_and_analysis(brief_lines: list[str]) -> None:
    issue = parse_issue(import_text("\n".join(brief_lines)).markdown)
    for item in issue.sections[0].items:
        for role in ("issuer", "doc_number", "date", "url"):
            assert item.meta_value(role), (item.title, role)
        assert item.analysis_label == "政策简析"
        assert len(item.analysis) == 2
    # the bare URL line became the 原文链接 of item 3; ASCII colons were accepted
    third = issue.sections[0].items[2]
    assert third.meta_value("url") == (
        "https://www.nda.gov.cn/sjj/zwgk/zcfb/1127/20261127150012345678_pc.html"
    )
    assert third.meta_value("date") == "2026年11月27日"


def test_numbered_list_inside_an_item_stays_in_the_body(brief_lines: list[str]) -> None:
    issue = parse_issue(import_text("\n".join(brief_lines)).markdown)
    second = issue.sections[0].items[1]
    texts = [b.text for b in second.body]
    assert any(t.startswith("1.建立拖欠账款投诉") for t in texts)
    assert any(t.startswith("3.推动将账款支付情况") for t in texts)


def test_news_links_and_inline_urls(brief_lines: list[str]) -> None:
    issue = parse_issue(import_text("\n".join(brief_lines)).markdown)
    urls = [ln.url for ln in issue.links]
    assert "https://zwfw.example.gov.cn/art/2026/11/23/art_1229_5560001.html" in urls
    assert "https://std.example.org/tb/2026/1129.html" in urls
    news = issue.sections[1].items
    assert news[2].meta_value("date") == "2026年11月26日"
    assert news[1].meta == []


def test_chrome_is_dropped_and_reported(brief_lines: list[str]) -> None:
    result = import_text("\n".join(brief_lines))
    reported = dict(result.chrome)
    expected = [
        "首页 > 政策研究 > 周报 > 正文",
        "【字体：大 中 小】",
        "发布时间：2026-12-01 09:30  浏览次数：1873",
        "分享到：微信 微博 QQ空间",
        "【打印本页】【关闭窗口】",
        "上一篇：营商环境与数字经济政策周报（第47期）",
        "责任编辑：林晓",
        "扫一扫在手机上查看当前页面",
        "版权所有：示例研究院 京ICP备00000000号",
    ]
    for line in expected:
        n = brief_lines.index(line) + 1
        assert reported.get(n) == line
        assert line not in result.markdown
    # the hand-written table of contents is reported as contents, the real headings are not
    contents = dict(result.contents)
    toc_line = brief_lines.index("一、政策法规") + 1
    assert contents.get(toc_line) == "一、政策法规"
    assert contents.get(brief_lines.index("目录") + 1) == "目录"
    assert result.markdown.count("## 一、政策法规") == 1


def test_lines_with_no_structural_place_stay_as_text() -> None:
    text = "标题：测试\n期数：第5期\n发布机构：某部门\n一、政策\n丨政策简析丨\n1、甲\n正文\n"
    result = import_text(text)
    assert result.unplaced == []
    outline = {n: cls for n, cls, _ in result.outline}
    assert outline == {
        1: "header",
        2: "header",
        3: "body",
        4: "section",
        5: "body",
        6: "item",
        7: "body",
        8: "blank",
    }
    issue = parse_issue(result.markdown)
    assert issue.number == 5
    assert [b.text for b in issue.intro] == ["发布机构：某部门"]
    assert [b.text for b in issue.sections[0].intro] == ["丨政策简析丨"]
    assert issue.sections[0].items[0].body[0].text == "正文"


def test_prose_is_escaped_not_interpreted() -> None:
    line = "# 不是标题 *不是强调* [不是链接](x) <b>x</b> | 竖线 &amp; ::: meta"
    text = f"标题：测试\n期数：1\n一、政策\n1、甲\n{line}\n- 不是列表\n> 不是引用\n2) 不是编号\n"
    issue = parse_issue(import_text(text).markdown)
    body = issue.sections[0].items[0].body
    assert [b.kind for b in body] == ["paragraph"] * 4
    assert [b.text for b in body] == [line, "- 不是列表", "> 不是引用", "2) 不是编号"]


def test_front_matter_overrides_and_missing_number() -> None:
    text = "某某周报\n一、要闻\n1、甲\n正文\n"
    result = import_text(text)
    assert any("no issue number" in w for w in result.warnings)
    assert "number" not in result.markdown.split("---")[1]
    issue = parse_issue(result.markdown)
    assert issue.title == "某某周报" and issue.number == 0
    issue = parse_issue(import_text(text, front_matter={"number": 9}).markdown)
    assert issue.number == 9


def test_tab_separated_rows_become_a_table() -> None:
    text = "标题：测试\n期数：1\n一、数据\n1、表\n地区\t数量\n东部\t372\n西部\t146\n说明文字\n"
    issue = parse_issue(import_text(text).markdown)
    body = issue.sections[0].items[0].body
    assert body[0].kind == "table"
    assert body[0].rows == [["地区", "数量"], ["东部", "372"], ["西部", "146"]]
    assert body[1].text == "说明文字"


@pytest.mark.parametrize(
    ("line", "period"),
    [
        ("2026年3月2日至3月8日", "2026.03.02–2026.03.08"),  # the second date takes the first's year
        ("2025年12月29日—2026年1月4日", "2025.12.29–2026.01.04"),  # across a new year
        ("20210802-20210808", "2021.08.02–2021.08.08"),
    ],
)
def test_a_period_line_is_read_with_the_right_years(line: str, period: str) -> None:
    """Found by mutation testing: nothing checked which year the second date gets."""
    issue = parse_issue(import_text(f"某某周报\n第5期\n{line}\n一、要闻\n1、甲\n正文\n").markdown)
    assert issue.period == period


def test_empty_and_missing_table_cells_stay_blank() -> None:
    """Found by mutation testing: an empty cell, or a row shorter than the header, must
    come out blank, not filled with anything."""
    text = "标题：测试\n期数：1\n一、数据\n1、表\n地区\t数量\t备注\n东部\t\t新增\n西部\t146\n"
    issue = parse_issue(import_text(text).markdown)
    table = issue.sections[0].items[0].body[0]
    assert table.kind == "table"
    assert table.rows == [["地区", "数量", "备注"], ["东部", "", "新增"], ["西部", "146", ""]]


def test_items_before_any_section_get_a_named_section_and_a_warning() -> None:
    """An item the author's formatting marks above the first section heading (a Word
    file's bold line under the title) never leaves a bare ``## 一、`` the parser refuses:
    its section is named, and the editor is told to check it."""
    text = "金融监管动态\n\n监管总局发布补充规定\n发文单位：国家金融监督管理总局\n\n正文一段。\n"
    result = import_text(text, hints={1: "title", 3: "item"})
    issue = parse_issue(result.markdown)
    assert [s.title for s in issue.sections] == ["本期内容"]
    assert [i.title for i in issue.sections[0].items] == ["监管总局发布补充规定"]
    assert any("本期内容" in w and w.startswith("第一个栏目之前") for w in result.warnings)


def test_a_number_given_only_in_the_colophon_is_read_and_a_citation_is_not() -> None:
    """The foot of a brief that dates and numbers the issue gives its number (the line
    stays in the text); a sentence that cites another issue does not."""
    body = "政策摘编\n\n一、能源\n\n1．国家能源局发布通知\n发文机关：国家能源局\n\n正文一段。\n\n"
    colophon = import_text(body + "编印：政策研究室　　2026年第14期（总第203期）　　2026年4月7日\n")
    assert parse_issue(colophon.markdown).number == 14
    assert "编印：政策研究室" in colophon.markdown
    cited = import_text(body + "（详见本刊第12期）\n")
    assert parse_issue(cited.markdown).number in (0, None)
    assert "详见本刊第12期" in cited.markdown


def test_fields_in_brackets_closing_an_item_title_are_its_fields() -> None:
    """``■ …的通知（国发〔2026〕8号，2026年3月1日）``: the title is the words before the
    bracket (however long the line), the bracket's values are the item's fields."""
    text = (
        "财税政策速递\n第7期\n\n◆ 中央政策\n\n"
        "■ 国务院关于调整完善部分税收优惠政策的通知（国发〔2026〕8号，2026年3月1日）\n正文一段。\n\n"
        "■ 海南省财政厅 国家税务总局海南省税务局关于海南自由贸易港鼓励类产业企业所得税优惠"
        "目录执行有关问题的通知（琼财税〔2026〕31号 2026年2月28日）\n正文二段。\n\n"
        "◆ 地方政策\n\n■ 深圳市人民政府关于印发《若干措施》的通知（试行）\n正文三段。\n"
    )
    issue = parse_issue(import_text(text).markdown)
    first, second = issue.sections[0].items
    assert first.title == "国务院关于调整完善部分税收优惠政策的通知"
    assert {m.value for m in first.meta} == {"国发〔2026〕8号", "2026年3月1日"}
    assert second.title.endswith("有关问题的通知")
    assert {m.value for m in second.meta} == {"琼财税〔2026〕31号", "2026年2月28日"}
    assert issue.sections[1].items[0].title == "深圳市人民政府关于印发《若干措施》的通知（试行）"


def test_a_symbol_that_opens_each_items_analysis_is_learnt_and_a_bullet_list_is_not() -> None:
    """``→ …`` once under each of several items is their analysis; ``● …`` twice under one
    item is a list in its text."""
    items = "".join(
        f"■ 国务院关于第{k}项政策的通知\n发文机关：国务院\n正文第{k}段，说明政策的主要内容和适用范围。\n"
        f"→ 第{k}项政策对园区运营类客户是明确利好，建议提前测算税负变化并做好沟通。\n\n"
        for k in range(1, 4)
    )
    bullets = (
        "■ 财政部关于第四项政策的通知\n正文。\n● 第一，延续实施小微企业增值税优惠政策，执行至年底。\n"
        "● 第二，调整优化享受条件，明确适用的纳税人范围和申报方式。\n"
    )
    text = f"政策速递\n第7期\n\n◆ 中央政策\n\n{items}\n◆ 地方政策\n\n{bullets}"
    issue = parse_issue(import_text(text).markdown)
    assert [len(s.items) for s in issue.sections] == [3, 1]
    analysed = [i for s in issue.sections for i in s.items if i.analysis_label is not None]
    assert len(analysed) == 3
    assert "● 第一" in import_text(text).markdown  # the list stays in the item's text


def test_contact_lines_take_nothing_of_the_brief_with_them() -> None:
    """A notice's 联系电话 inside an item leaves the items after it alone, and the lines
    under a closing 联系我们 (a hotline, a mailbox) stay: they may be what readers need."""
    items = "".join(
        f"{k}. 国家医保局关于第{k}项工作的通知\n发文机关：国家医保局\n"
        f"通知要求各地做好第{k}项工作的组织实施，按期报送进展情况，确保政策平稳落地见效。\n"
        + ("联系电话：010-8888 0000\n" if k == 1 else "")
        for k in range(1, 4)
    )
    text = f"医保政策周报\n第10期\n\n一、医保\n{items}\n二、其他\n4. 简讯\n简讯正文，内容较长，说明有关情况，供参考使用。\n\n联系我们\n电话：010-8562 7731\n邮箱：policy@example.cn\n"
    out = import_text(text).markdown
    issue = parse_issue(out)
    assert [len(s.items) for s in issue.sections] == [3, 1]
    assert "policy@example.cn" in out and "010-8562 7731" in out
