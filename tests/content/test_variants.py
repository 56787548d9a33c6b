from __future__ import annotations

import re

import pytest

from newsletter.content.model import Issue
from newsletter.content.parser import parse_issue
from newsletter.content.variants import _converter, convert_text, to_variant

HEADER = "---\ntitle: 软件发布周报\nnumber: 1\n---\n\n"


def test_character_level_conversion_keeps_mainland_vocabulary() -> None:
    assert convert_text("政策") == "政策"
    assert convert_text("发布") == "發布"  # not the Taiwan IT idiom 釋出
    assert convert_text("软件") == "軟件"  # character level, not the Taiwan 軟體
    assert convert_text("网络安全") == "網絡安全"
    assert convert_text("政策文件") == "政策文件"  # not 檔案 in a policy context
    assert convert_text("优化循环") == "優化循環"  # not 最佳化 / 迴圈
    assert convert_text("为") == "爲" and convert_text("为", "s2tw") == "為"
    assert convert_text("着力", "s2hk") == "着力"


def test_urls_in_text_are_not_converted() -> None:
    text = "详见 https://example.org/ruanjian/发布?q=软件 的说明"
    out = convert_text(text)
    assert "https://example.org/ruanjian/发布?q=软件" in out
    assert out.startswith("詳見")


def test_zh_hant_issue(sample_issue: Issue) -> None:
    hant = to_variant(sample_issue, "zh-Hant")
    assert hant.variant == "zh-Hant"
    assert hant.title == "《營商環境與數字經濟政策週報》"
    item = hant.sections[0].items[0]
    assert item.meta[0].key == "發布機構"
    assert item.meta[0].role == "issuer"
    assert item.meta_value("issuer") == "國務院辦公廳"
    titles = [it.title for _, it in hant.iter_items()]
    assert any("軟件" in t for t in titles)
    assert hant.sections[0].items[0].analysis_label == "政策簡析"


def test_zh_hant_keeps_urls_anchors_and_markup(sample_issue: Issue) -> None:
    hant = to_variant(sample_issue, "zh-Hant")
    assert [ln.url for ln in hant.links] == [ln.url for ln in sample_issue.links]
    assert [ln.text for ln in hant.links] != [ln.text for ln in sample_issue.links]
    assert [it.anchor for _, it in hant.iter_items()] == [
        it.anchor for _, it in sample_issue.iter_items()
    ]
    assert [i.src for i in hant.images] == [i.src for i in sample_issue.images]
    assert hant.images[0].alt != sample_issue.images[0].alt
    tag = re.compile(r"<[^>]*>")
    for (_, a), (_, b) in zip(sample_issue.iter_items(), hant.iter_items(), strict=True):
        for x, y in zip(a.body + a.analysis, b.body + b.analysis, strict=True):
            assert tag.findall(x.html) == tag.findall(y.html)
            assert x.links == y.links
        for mx, my in zip(a.meta, b.meta, strict=True):
            if mx.role == "url":
                assert mx.value == my.value


def test_source_issue_is_not_modified(sample_issue: Issue) -> None:
    before = sample_issue.sections[0].items[0].body[0].text
    to_variant(sample_issue, "zh-Hant")
    assert sample_issue.sections[0].items[0].body[0].text == before
    assert sample_issue.variant == "zh-Hans"


def test_zh_hans_is_an_unchanged_copy(sample_issue: Issue) -> None:
    copy = to_variant(sample_issue, "zh-Hans")
    assert copy == sample_issue
    assert copy is not sample_issue
    assert copy.sections[0] is not sample_issue.sections[0]


def test_html_attributes_untouched() -> None:
    issue = parse_issue(HEADER + '发布[软件](https://example.org/软件 "软件说明")。\n')
    hant = to_variant(issue, "zh-Hant")
    html = hant.intro[0].html
    assert html.startswith("發布<a ")
    assert 'title="软件说明"' in html
    assert ">軟件</a>" in html


def test_bad_variant() -> None:
    issue = parse_issue(HEADER)
    with pytest.raises(ValueError):
        to_variant(issue, "zh-TW")
    with pytest.raises(ValueError):
        to_variant(to_variant(issue, "zh-Hant"), "zh-Hans")


def test_converter_is_cached() -> None:
    convert_text("软件")
    before = _converter.cache_info()
    convert_text("软件")
    after = _converter.cache_info()
    assert after.hits > before.hits
    assert after.currsize == before.currsize
