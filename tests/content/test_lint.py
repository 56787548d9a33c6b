from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from newsletter.content.lint import LintMessage, lint_source
from newsletter.content.model import Issue

from .conftest import SAMPLE

HEADER = "---\ntitle: 测试周报\nnumber: 3\n---\n\n"
POLICY_META = (
    "::: meta\n发布机构：国务院办公厅\n文号：国办发〔2026〕1号\n发布日期：2026年1月1日\n"
    "原文链接：https://www.gov.cn/a.htm\n:::\n"
)


def _codes(messages: list[LintMessage]) -> list[tuple[str, int | None]]:
    return [(m.code, m.line) for m in messages]


def test_sample_is_clean(sample_text: str) -> None:
    assert lint_source(sample_text, SAMPLE) == []


def test_parse_error_is_one_message() -> None:
    messages = lint_source(HEADER + "## 一、政策\n\n### 1. 甲\n\n::: foo\n:::\n")
    assert len(messages) == 1
    assert (messages[0].level, messages[0].code, messages[0].line) == ("error", "parse", 10)
    assert "foo" in messages[0].message


def test_duplicate_and_skipped_numbering() -> None:
    text = HEADER + (
        "## 一、政策\n\n### 1. 甲\n\n正文\n\n### 1. 乙\n\n正文\n\n### 3. 丙\n\n正文\n\n"  # 6..18
        "## 三、要闻\n\n### 1. 丁\n\n正文\n\n"  # 20..24
        "## 三、数据\n\n### 2. 戊\n\n正文\n"  # 26..28
    )
    messages = lint_source(text)
    assert _codes(messages) == [
        ("item-number", 12),
        ("item-number", 16),
        ("section-number", 20),
        ("section-number", 26),
        ("item-number", 28),
    ]
    assert all(m.level == "error" for m in messages)
    assert "repeats" in messages[0].message and "line 8" in messages[0].message
    assert "expected 2" in messages[1].message
    assert "expected 二、" in messages[2].message


def test_links_must_be_https_and_well_formed() -> None:
    text = HEADER + (
        "正文 [甲](https://example.org/ok)\n"  # 6
        "和 [乙](http://example.org/plain)\n"  # 7
        "\n[丙](relative/page.html) [丁](https://nohost)\n"  # 9
    )
    messages = lint_source(text)
    assert _codes(messages) == [
        ("link-insecure", 7),
        ("link-malformed", 9),
        ("link-malformed", 9),
    ]
    assert messages[0].level == "warning"
    assert "http://example.org/plain" in messages[0].message


def test_policy_items_missing_meta_are_warned() -> None:
    text = (
        HEADER
        + (
            "## 一、政策\n\n### 1. 完整\n\n" + POLICY_META + "\n正文\n\n"  # 6..18
            "### 2. 缺文号\n\n::: meta\n发布机构：某部\n日期：2026年1月2日\n:::\n\n正文\n\n"  # 19
            "### 3. 无元数据\n\n正文\n\n"  # 28
            "## 二、要闻\n\n### 1. 新闻\n\n::: meta\n来源：某报\n:::\n\n正文\n"
        )
    )
    messages = lint_source(text)
    assert _codes(messages) == [("meta-missing", 19), ("meta-missing", 28)]
    assert "文号" in messages[0].message and "原文链接" in messages[0].message
    assert "发布机构" not in messages[0].message


def test_meta_url_that_is_not_a_url() -> None:
    text = HEADER + "## 一、政策\n\n### 1. 甲\n\n::: meta\n链接：暂无\n:::\n"
    assert _codes(lint_source(text)) == [("meta-url", 11)]


def test_images_need_alt_text_and_a_file(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    text = HEADER + "![说明](ok.png)\n\n![](ok.png)\n\n![缺失](missing.png)\n"
    src = tmp_path / "issue.md"
    assert _codes(lint_source(text, src)) == [("image-alt", 8), ("image-missing", 10)]
    # without a path the file checks are skipped
    assert _codes(lint_source(text)) == [("image-alt", 8)]


def test_missing_cover_is_reported(tmp_path: Path) -> None:
    text = "---\ntitle: 测试\nnumber: 1\ncover: cover.png\n---\n"
    assert _codes(lint_source(text, tmp_path / "issue.md")) == [("image-missing", 1)]


def test_empty_sections_and_items() -> None:
    text = HEADER + "## 一、政策\n\n## 二、要闻\n\n### 1. 甲\n\n### 2. 乙\n\n正文\n"
    messages = lint_source(text)
    assert _codes(messages) == [("section-empty", 6), ("item-empty", 10)]
    assert all(m.level == "warning" for m in messages)


def test_extra_checks_hook() -> None:
    seen: list[Issue] = []

    def budget(issue: Issue) -> Iterable[LintMessage]:
        seen.append(issue)
        yield LintMessage("warning", None, "budget-email", f"{issue.char_count()} chars")

    messages = lint_source(HEADER + "## 一、政策\n\n### 1. 甲\n\n正文\n", extra_checks=[budget])
    assert len(seen) == 1 and seen[0].title == "测试周报"
    assert _codes(messages) == [("budget-email", None)]
    assert str(messages[0]).startswith("warning: ")
