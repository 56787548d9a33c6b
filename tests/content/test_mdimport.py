"""A brief written in Markdown is read through its markup (``content/mdimport.py``): its
headings, bold lines, tables and quotes are the structure, and no ``#`` or ``*`` is left
in the text; a file already in the product's issue format comes back unchanged."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.content.mdimport import looks_like_markdown
from newsletter.content.parser import parse_issue
from newsletter.content.textimport import import_issue_text
from newsletter.core.resources import package_path

_BRIEF = """# 金融监管周报

2026年第12期 ｜ 2026.11.30—12.06

## 一、银行监管

### 1. 监管总局发布流动性新规

| 项目 | 内容 |
|---|---|
| 发布机构 | 国家金融监督管理总局 |
| 发布日期 | 2026年12月3日 |

办法要求理财公司持有不低于百分之五的高流动性资产。

> **研究员观点：** 短期内对短端利率债形成增量需求。

### 2. 人民银行公布社融数据

- 发布机构：中国人民银行
- 发布日期：2026年12月5日

社会融资规模存量同比增长百分之七点九。

## 二、外汇管理

### 1. 外汇局扩大跨境融资试点

发布机构：国家外汇管理局

试点扩大至十个省市。
"""


def test_a_markdown_brief_is_read_through_its_markup(tmp_path: Path) -> None:
    src = tmp_path / "weekly.md"
    src.write_text(_BRIEF, encoding="utf-8")
    out = tmp_path / "issue.md"
    import_issue_text(src, out)
    text = out.read_text(encoding="utf-8")
    doc = parse_issue(text)
    assert doc.title == "金融监管周报" and doc.number == 12
    assert [(s.title, [i.title for i in s.items]) for s in doc.sections] == [
        ("银行监管", ["监管总局发布流动性新规", "人民银行公布社融数据"]),
        ("外汇管理", ["外汇局扩大跨境融资试点"]),
    ]
    first = doc.sections[0].items[0]
    assert {m.key: m.value for m in first.meta} == {
        "发布机构": "国家金融监督管理总局", "发布日期": "2026年12月3日"}  # fmt: skip
    assert "项目" not in text  # the table's header row names its columns: not a field
    body = text.split("---", 2)[2]
    assert "\\#" not in body and "\\*" not in body and "|---" not in body


def test_an_issue_in_the_products_format_comes_back_unchanged(tmp_path: Path) -> None:
    sample = package_path("newsletter.devtools", "examples", "issue-sample.md")
    out = tmp_path / "again.md"
    import_issue_text(sample, out)
    assert out.read_bytes() == sample.read_bytes()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="一二三政策通知。，：1.、（）#* 第期", max_size=40), max_size=12))
def test_plain_text_with_a_stray_mark_is_not_taken_for_markdown(lines: list[str]) -> None:
    """A plain brief needs three lines of Markdown markup before it is read as Markdown
    (one is enough in a file named .md): a stray ``#`` or ``*`` does not change how it
    is read."""
    text = "\n".join(lines)
    marks = sum(
        1 for ln in lines if ln.startswith(("# ", "## ", "### ", "> ")) or ln.startswith("**")
    )
    if marks == 0:
        assert not looks_like_markdown(text, "brief.txt")
        assert not looks_like_markdown(text, "brief.md")


def test_html_written_into_markdown_is_read_for_its_words_and_nothing_else() -> None:
    """``<details>``, ``<br>``, footnotes and links written as HTML are read like a page's;
    a script, a style, a frame or a ``javascript:`` link never reaches the issue."""
    from newsletter.content.documents import read_document
    from newsletter.content.textimport import import_text

    md = (
        "# 周报 第3期\n\n## 一、政策\n\n### 1. 某通知\n\n正文一段[^1]。<br>详见："
        '<a href="https://www.gov.cn/a.htm">原文</a>\n\n'
        "<details><summary><b>研究所点评</b></summary>\n\n点评的内容，较为重要。\n\n</details>\n\n"
        "<script>alert('x')</script>\n<a href=\"javascript:alert(1)\">点我</a>\n"
        '<iframe src="https://evil.example/"></iframe>\n<style>body{display:none}</style>\n\n'
        "[^1]: 规划全文见 https://www.gov.cn/b.htm\n"
    )
    text, source, _ = read_document(md.encode(), name="brief.md")
    out = import_text(text, source=source).markdown
    assert "https://www.gov.cn/a.htm" in out and "规划全文见" in out and "点评的内容" in out
    assert "<" not in out.replace("<https://", "") and "\\[^1" not in out
    for bad in ("javascript", "alert", "evil.example", "display:none", "↩"):
        assert bad not in out
