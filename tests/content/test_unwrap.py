"""Text copied out of a PDF (``content.unwrap``): lines broken at the page's width are
joined, page numbers and running headers found by their counting up and coming back, and
nothing else is touched."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.content.textimport import import_text
from newsletter.content.unwrap import unwrap

from .conftest import BRIEF

_PARA = (
    "通知明确，对于贷款购买商品住房的居民家庭，首套住房商业性个人住房贷款最低首付款比例统一"
    "为不低于百分之十五，二套住房统一为不低于百分之二十五。在全国统一的信贷政策基础上，各省级"
    "分行可根据城市政府调控要求，自主确定辖区各城市首付款比例下限。"
)


def _wrapped(text: str, width: int = 28) -> list[str]:
    return [text[k : k + width] for k in range(0, len(text), width)]


def _pdf() -> list[str]:
    lines = ["财经政策周报", "2026年第9期", "", "一、金融政策"]
    for n in range(1, 4):
        lines += [f"（{n}）中国人民银行关于优化个人住房贷款首付比例政策有关事项的第{n}号通知"[:28]]
        lines += [
            "的通知",
            "发文机关：中国人民银行",
            "原文链接：https://www.pbc.gov.cn/goutongjiaoliu/11",
        ]
        lines += ["3456/2026022816254917231/index.html"]
        body = _wrapped(f"\u3000\u3000第{n}项。" + _PARA)
        lines += [*body[:3], f"— {n} —", "财经政策周报｜2026年第9期", *body[3:]]
    return lines


def test_a_pdf_copy_is_joined_and_its_page_furniture_found() -> None:
    raws = _pdf()
    out, furniture = unwrap(raws)
    assert sorted(raws[k] for k in furniture) == sorted(
        ["— 1 —", "— 2 —", "— 3 —"] + ["财经政策周报｜2026年第9期"] * 3
    )
    joined = [x for x in out if x.strip()]
    assert sum(_PARA in x for x in joined) == 3  # across the page break, too
    assert (
        "原文链接：https://www.pbc.gov.cn/goutongjiaoliu/113456/2026022816254917231/index.html"
        in joined
    )
    assert len(out) == len(raws)  # an editor's line numbers still hold


def test_the_import_of_a_pdf_copy_reads_whole_titles_and_links() -> None:
    result = import_text("\n".join(_pdf()))
    assert "首付比例政策有关事项的第1号通知的通知" not in result.markdown  # (the title's own words)
    assert "index.html" in result.markdown and "— 2 —" not in result.markdown
    assert result.markdown.count(_PARA) == 3


def test_a_brief_not_copied_from_a_pdf_is_left_as_it_is() -> None:
    raws = BRIEF.read_text(encoding="utf-8").split("\n")
    assert unwrap(raws) == (raws, set())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=40))
def test_unwrap_never_loses_text(raws: list[str]) -> None:
    out, furniture = unwrap(raws)
    assert len(out) == len(raws)
    kept = "".join(r for k, r in enumerate(raws) if k not in furniture)
    assert re.sub(r"\s", "", "".join(out)) == re.sub(r"\s", "", kept)


def test_a_forwarded_brief_is_unquoted_and_the_forwarders_notes_are_not_its_text() -> None:
    """A brief forwarded twice: the inner copy quoted with ``> ``, each forwarder's note
    above the header block of the mail it forwards."""
    header = ["From: 李娜 <lina@example.com>", "Sent: Monday, March 16, 2026", "To: 王磊",
              "Subject: FW: 周报"]  # fmt: skip
    brief = ["金融监管动态周报", "2026年第10期", "", "一、监管规则", "",
             "1. 中国人民银行关于规范资产管理产品估值的指导意见", "发文机关：中国人民银行",
             "文号：银发〔2026〕52号", "", "意见要求，资产管理产品应当坚持公允价值计量原则。",
             "", "2. 中国证监会关于加强债券交易杠杆管理有关事项的通知", "发文机关：中国证监会",
             "", "通知明确，债券交易杠杆率上限为百分之一百四十。"]  # fmt: skip
    text = "\n".join(
        [*header, "", "王总，本周监管周报见下，供参考。", "", "> -----Original Message-----"]
        + [f"> {x}" if x else ">" for x in [*header, "", *brief]]
    )
    result = import_text(text)
    assert "王总" not in result.markdown and "> " not in result.markdown
    assert "title: 金融监管动态周报" in result.markdown
    assert result.markdown.count("### ") == 2 and "银发〔2026〕52号" in result.markdown


def test_a_colophon_under_a_closing_rule_is_found_and_a_rule_mid_text_is_not() -> None:
    from newsletter.content.unwrap import colophon

    body = ["一、财税", "■ 通知", "正文。"]
    tail = ["——————————————", "本速递仅供参考。如需订阅或退订，请回复邮件至 policy@example.com"]
    assert colophon(body + tail) == {3, 4}
    assert colophon(["——————", *body, "正文二。", "正文三。", "正文四。", "正文五。"]) == set()
    long_tail = ["——————", "正" * 200]
    assert colophon(body + long_tail) == set()  # a paragraph under a rule is text


def _kept(text: str) -> str:
    return import_text(text).markdown


def test_the_heuristics_that_drop_lines_keep_the_briefs_own() -> None:
    """Found by a hostile tester: each of these lost real content once."""
    items = "".join(
        f"{k}. 国务院关于第{k}项工作的通知\n发文机关：国务院\n通知要求各地认真抓好第{k}项工作的落实。\n"
        for k in range(1, 4)
    )
    # '--' as a separator between items, and as a missing value, is no signature
    later = items.replace("3.", "4.").replace("2.", "3.").replace("1.", "2.")
    sep = _kept(f"周报\n第1期\n\n一、政策\n1. 第一条通知\n正文一。\n--\n{later}")
    assert sep.count("### ") == 4 and "第3项工作" in sep
    # three dates under a closing rule are the last item's, not a colophon
    dates = _kept(f"周报\n第1期\n\n一、政策\n{items}——————————\n第一批：3月20日\n第二批：4月20日\n")
    assert "第二批：4月20日" in dates
    mail = _kept(f"周报\n第1期\n\n一、政策\n{items}——————————\n订阅请发邮件至 news@example.cn\n")
    assert "news@example.cn" not in mail and "第3项工作" in mail
    # a mail quoted inside an item ends no forwarding chain: the brief above it stays
    quoted = _kept(
        f"金融周报\n第8期\n\n一、银行业\n{items}原邮件如下：\n发件人: 协会秘书处\n"
        "发送时间: 2026年1月15日 9:30\n收件人: 各会员单位\n主题: 征求意见\n\n请于月底前反馈。\n"
    )
    assert "title: 金融周报" in quoted and quoted.count("### ") == 3 and "请于月底前反馈" in quoted


def test_numbers_that_count_up_a_few_lines_apart_are_a_list_not_pages() -> None:
    from newsletter.content.unwrap import page_furniture

    assert page_furniture(["东部", "1", "中部", "2", "西部", "3", "东北", "4"]) == set()
