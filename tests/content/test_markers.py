"""Markers read from a line's start: the shape each ordinal series shares, and its number."""

from __future__ import annotations

import pytest

from newsletter.content.markers import heading_length, read_marker
from newsletter.content.patterns import normalise


@pytest.mark.parametrize(
    ("line", "shape", "number"),
    [
        ("十一、附录", "〈cn〉、", 11),
        ("一百零五、附录", "〈cn〉、", 105),
        ("第十章 总则", "第〈cn〉章", 10),
        ("甲、国家层面", "〈stem〉、", 1),
        ("丙、地方", "〈stem〉、", 3),
        ("㈡ 地方实践", "(〈cn〉)", 2),
        ("（二）地方实践", "(〈cn〉)", 2),
        ("⑶ 文件", "(〈arabic〉)", 3),
        ("⒉ 文件", "〈arabic〉、", 2),
        ("(iii) 文件", "(〈rlower〉)", 3),
        ("1.2 文件", "〈decimal〉", 2),
        ("B2 文件", "〈letnum〉", 2),
        ("A｜财政税收", "〈upper〉|", 1),
        ("专题二：生物医药", "专题〈cn〉", 2),
        ("【宏观】", "enclosed 【】", 0),
        ("【案例】某公司诉某公司案", "labelled 【】", 0),
        ("01 标题", "〈zero〉、", 1),
    ],
)
def test_a_marker_has_its_series_shape_and_number(line: str, shape: str, number: int) -> None:
    marker = read_marker(normalise(line))
    assert marker is not None and (marker.shape, marker.number) == (shape, number)


@pytest.mark.parametrize(
    "line", ["2.5亿元", "1.5% 的增长", "A股上涨", "甲方：某公司", "一带一路建设", "2021年", "【】"]
)
def test_words_that_start_with_a_number_or_letter_are_no_marker(line: str) -> None:
    assert read_marker(normalise(line)) is None


def test_a_translation_does_not_make_a_heading_long() -> None:
    title = "《个人信息保护合规审计管理办法》配套指南 / PI Compliance Audit Guidelines"
    assert heading_length(title) == len("《个人信息保护合规审计管理办法》配套指南")


@pytest.mark.parametrize(
    "line",
    [
        "a" + "." * 200_000 + "x",
        ". " * 100_000,
        "【" * 100_000,
        "11.1—" * 40_000,
        "| a " * 50_000 + "|",
    ],
)
def test_a_hostile_long_line_imports_in_linear_time(line: str) -> None:
    """Every rule reads a line in one pass: a 200,000-character line of the characters
    the rules look for imports in a fraction of a second.  (No timing: a quadratic rule
    takes hours on such a line, and the suite's 300-second timeout fails the test.)"""
    from newsletter.content.textimport import import_text

    result = import_text("标题\n第1期\n一、节\n" + line + "\n正文。")
    assert result.markdown.startswith("---")


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("2026年11月17日—23日", "2026.11.17–2026.11.23"),
        ("20210802-20210808", "2021.08.02–2021.08.08"),
        ("2021年8月2日至8月8日", "2021.08.02–2021.08.08"),
        ("2026.12.28—01.03", "2026.12.28–2027.01.03"),
    ],
)
def test_a_period_s_second_date_takes_what_it_leaves_out_from_the_first(
    text: str, period: str
) -> None:
    from newsletter.content.lines import _format_period
    from newsletter.content.patterns import patterns

    m = patterns().period.search(text)
    assert m is not None and _format_period(m) == period
