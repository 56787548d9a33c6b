from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from newsletter.content.decode import decode_source
from newsletter.content.model import Issue
from newsletter.content.numerals import format_numeral, parse_numeral
from newsletter.content.parser import load_issue, parse_issue
from newsletter.core.errors import IssueFormatError

from .conftest import EXAMPLES, SAMPLE

HEADER = "---\ntitle: 测试周报\nnumber: 3\n---\n\n"


def _items(issue: Issue, section: int) -> int:
    return len(issue.sections[section].items)


# --------------------------------------------------------------------------- the sample


def test_sample_has_the_size_of_a_real_issue(sample_text: str) -> None:
    assert 25_000 <= len(sample_text) <= 30_000


def test_sample_structure(sample_issue: Issue) -> None:
    assert sample_issue.title == "《营商环境与数字经济政策周报》"
    assert sample_issue.number == 47
    assert sample_issue.date == "2026-11-23"
    assert sample_issue.cover == "images/cover.png"
    assert [s.numeral for s in sample_issue.sections] == ["一", "二", "三"]
    assert _items(sample_issue, 0) == 4
    assert 13 <= _items(sample_issue, 1) <= 17
    assert sample_issue.intro and sample_issue.intro[-1].kind == "list"


def test_sample_policy_items_have_all_meta_and_analysis(sample_issue: Issue) -> None:
    for item in sample_issue.sections[0].items:
        for role in ("issuer", "doc_number", "date", "url"):
            assert item.meta_value(role), (item.title, role)
        assert (item.meta_value("url") or "").startswith("https://")
        assert item.analysis_label == "政策简析"
        assert 3 <= len(item.analysis) <= 6
        assert 2 <= len(item.body) <= 4


def test_sample_summary_only_where_written(sample_issue: Issue) -> None:
    items = sample_issue.sections[0].items
    assert items[0].summary is not None and items[0].summary.startswith("国办首次")
    assert items[1].summary is None


def test_sample_news_has_quote_table_and_image(sample_issue: Issue) -> None:
    kinds = [b.kind for it in sample_issue.sections[1].items for b in it.body]
    assert kinds.count("quote") >= 2
    assert "table" in kinds
    image_blocks = [
        b for it in sample_issue.sections[1].items for b in it.body if b.kind == "image"
    ]
    assert len(image_blocks) == 1
    assert image_blocks[0].image is not None
    assert image_blocks[0].image.src == "images/chart-1.png"


def test_anchors_unique_and_ascii(sample_issue: Issue) -> None:
    anchors = [s.anchor for s in sample_issue.sections]
    anchors += [it.anchor for _, it in sample_issue.iter_items()]
    assert len(anchors) == len(set(anchors))
    assert all(re.fullmatch(r"s\d+(-i\d+)?", a) for a in anchors)
    assert sample_issue.sections[1].items[2].anchor == "s2-i3"


def test_links_numbered_in_document_order(sample_issue: Issue) -> None:
    links = sample_issue.links
    assert [ln.position for ln in links] == list(range(1, len(links) + 1))
    assert [ln.line for ln in links] == sorted(ln.line for ln in links)
    urls = [ln.url for ln in links]
    for item in sample_issue.sections[0].items:
        assert item.meta_value("url") in urls
    assert "https://openstd.samr.gov.cn/bzgk/gb/" in urls
    assert links[0].anchor == "s1-i1"


def test_block_html_carries_link_positions(sample_issue: Issue) -> None:
    blocks = [b for _, it in sample_issue.iter_items() for b in it.body if b.links]
    assert blocks
    for b in blocks:
        for pos in b.links:
            url = sample_issue.links[pos - 1].url
            assert f'<a href="{url}" data-link="{pos}">' in b.html


def test_meta_url_links_point_back(sample_issue: Issue) -> None:
    for _, item in sample_issue.iter_items():
        for m in item.meta:
            if m.link is not None:
                assert sample_issue.links[m.link - 1].url == m.value


def test_images_hashed_relative_to_base_dir(sample_issue: Issue) -> None:
    (img,) = sample_issue.images
    expected = hashlib.sha256((EXAMPLES / "images" / "chart-1.png").read_bytes()).hexdigest()
    assert img.sha256 == expected
    assert img.alt


def test_image_without_base_dir_has_no_hash(sample_text: str) -> None:
    issue = parse_issue(sample_text)
    assert issue.images[0].sha256 is None


def test_source_hash(sample_issue: Issue, sample_text: str) -> None:
    assert sample_issue.source_hash == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    assert parse_issue(sample_text).source_hash == sample_issue.source_hash


def test_plain_text_twin(sample_issue: Issue) -> None:
    first = sample_issue.sections[0].items[0].body[0]
    assert first.kind == "paragraph"
    assert "<" not in first.text
    table = next(b for _, it in sample_issue.iter_items() for b in it.body if b.kind == "table")
    assert table.rows[0] == ["类型", "新设数量（万户）", "同比增速"]
    assert "<th>类型</th>" in table.html


# --------------------------------------------------------------------------- dialect details


def test_item_numbering_styles_and_defaults() -> None:
    text = HEADER + "## 十二、其他\n\n### 7、 第七条\n\n::: analysis\n分析。\n:::\n"
    issue = parse_issue(text)
    section = issue.sections[0]
    assert (section.number, section.numeral, section.title) == (12, "十二", "其他")
    item = section.items[0]
    assert (item.number, item.title) == (7, "第七条")
    assert item.analysis_label == "政策简析"


def test_meta_roles_and_colons() -> None:
    text = HEADER + (
        "## 一、政策\n\n### 1. 标题\n\n::: meta\n发文机关: 国务院\n发文字号：国发〔2026〕1号\n"
        "成文日期：2026年1月2日\n网址：https://www.gov.cn/a.htm\n有效性：现行有效\n:::\n"
    )
    item = parse_issue(text).sections[0].items[0]
    assert [(m.key, m.role) for m in item.meta] == [
        ("发文机关", "issuer"),
        ("发文字号", "doc_number"),
        ("成文日期", "date"),
        ("网址", "url"),
        ("有效性", None),
    ]
    assert item.meta[4].value == "现行有效"
    assert item.meta[3].line == 14


def test_html_is_sanitised() -> None:
    text = (
        HEADER
        + '<script>alert(1)</script>\n\n[点我](javascript:alert(1)) <img src=x onerror="y">\n'
    )
    issue = parse_issue(text)
    html = " ".join(b.html for b in issue.intro)
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert issue.links == []


def test_same_url_twice_gets_two_positions() -> None:
    text = HEADER + "[甲](https://a.example.org/) 与 [乙](https://a.example.org/)，[内](#s1)\n"
    issue = parse_issue(text)
    assert [(ln.position, ln.text) for ln in issue.links] == [(1, "甲"), (2, "乙")]


def test_numerals_round_trip() -> None:
    assert all(parse_numeral(format_numeral(n)) == n for n in range(1, 1000))


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("十", 10),
        ("十二", 12),
        ("二十", 20),
        ("一百", 100),
        ("一百零五", 105),
        ("一百五", 150),
        ("贰拾", 20),
        ("两百", 200),
    ],
)
def test_numerals_as_written(written: str, value: int) -> None:
    assert parse_numeral(written) == value


@pytest.mark.parametrize("bad", ["", "十十", "零", "百", "二二", "十一十", "一百十", "一千"])
def test_bad_numerals(bad: str) -> None:
    assert parse_numeral(bad) is None


# --------------------------------------------------------------------------- errors


BAD_INPUTS = {
    "yaml syntax": ("---\ntitle: 周报\nnumber: [3\nperiod: x\n---\n", 4),
    "yaml mapping": ("---\ntitle: 周报\nnumber: 3\nperiod: a: b\n---\n", 4),
    "missing title": ("---\nnumber: 3\n---\n\n正文\n", 1),
    "number not a number": ("---\ntitle: 周报\nnumber: 第三期\n---\n", 3),
    "no front matter": ("## 一、政策\n", 1),
    "unclosed front matter": ("---\ntitle: 周报\nnumber: 3\n\n## 一、政策\n", 1),
    "unknown block": (HEADER + "## 一、政策\n\n### 1. 标题\n\n::: warning\n小心\n:::\n", 10),
    "bare block marker": (HEADER + "## 一、政策\n\n### 1. 标题\n\n:::\n", 10),
    "item without title": (HEADER + "## 一、政策\n\n### 1. 甲\n\n正文\n\n### 2、\n\n正文\n", 12),
    "item without number": (HEADER + "## 一、政策\n\n### 甲\n", 8),
    "item before section": (HEADER + "### 1. 甲\n", 6),
    "section without numeral": (HEADER + "## 政策法规\n", 6),
    "section without title": (HEADER + "## 三、\n", 6),
    "meta without colon": (
        HEADER + "## 一、政策\n\n### 1. 甲\n\n::: meta\n发布机构：国务院\n国办发〔2026〕1号\n:::\n",
        12,
    ),
    "meta outside item": (HEADER + "## 一、政策\n\n::: meta\n发布机构：国务院\n:::\n", 8),
    "second analysis": (
        HEADER
        + "## 一、政策\n\n### 1. 甲\n\n::: analysis\n一\n:::\n\n::: analysis 又一\n二\n:::\n",
        14,
    ),
    "block inside quote": (HEADER + "## 一、政策\n\n### 1. 甲\n\n> ::: meta\n> a：b\n> :::\n", 10),
    "invalid utf-8": (HEADER + "第一行\n第二行\udcff\n", 7),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_reports_line(name: str) -> None:
    text, line = BAD_INPUTS[name]
    with pytest.raises(IssueFormatError) as info:
        parse_issue(text, path="bad.md")
    assert info.value.line == line, str(info.value)
    assert info.value.path == "bad.md"
    assert str(info.value).startswith(f"bad.md:{line}: ")


# --------------------------------------------------------------------------- decoding


SIMPLE = HEADER + "## 一、政策法规\n\n### 1. 关于优化营商环境的通知\n\n正文段落。\n"
TRADITIONAL = (
    "---\ntitle: 測試週報\nnumber: 3\n---\n\n## 一、政策法規\n\n"
    "### 1. 關於優化營商環境的通知\n\n國務院辦公廳發布通知，進一步優化營商環境。\n"
)


def _write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "issue.md"
    p.write_bytes(data)
    return p


def test_utf8_with_bom_is_silent(tmp_path: Path) -> None:
    issue, warnings = load_issue(_write(tmp_path, b"\xef\xbb\xbf" + SIMPLE.encode()))
    assert warnings == []
    assert issue.title == "测试周报"


def test_gb18030_decodes_with_warning(tmp_path: Path) -> None:
    issue, warnings = load_issue(_write(tmp_path, SIMPLE.encode("gb18030")))
    assert issue.sections[0].items[0].title == "关于优化营商环境的通知"
    assert len(warnings) == 1 and "GB18030" in warnings[0]


def test_big5_decodes_with_warning(tmp_path: Path) -> None:
    issue, warnings = load_issue(_write(tmp_path, TRADITIONAL.encode("big5")))
    assert issue.sections[0].items[0].title == "關於優化營商環境的通知"
    assert len(warnings) == 1 and "Big5" in warnings[0]


def test_undecodable_bytes_name_offset_and_line(tmp_path: Path) -> None:
    data = SIMPLE.encode() + b"\xff\xfe\xff broken\n"
    offset = len(SIMPLE.encode())
    with pytest.raises(IssueFormatError) as info:
        load_issue(_write(tmp_path, data))
    assert info.value.line == SIMPLE.count("\n") + 1
    assert f"offset {offset}" in info.value.message


def test_decode_source_directly() -> None:
    assert decode_source("正文".encode()) == ("正文", [])
    text, warnings = decode_source("正文".encode("gb18030"), path="x.md")
    assert text == "正文" and warnings[0].startswith("x.md:")


def test_soft_breaks_between_chinese_are_joined() -> None:
    issue = parse_issue(HEADER + "第一行中文\n第二行中文\nEnglish words\nand more\n")
    block = issue.intro[0]
    assert block.text == "第一行中文第二行中文\nEnglish words\nand more"
    assert block.html == "第一行中文第二行中文\nEnglish words\nand more"
