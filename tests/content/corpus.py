"""The import accuracy corpus: briefs in different house styles and formats, each with what
a correct import must give.  Written before the importer was tuned; used by
``tests/content/test_import_accuracy.py`` and ``benchmarks/import_accuracy.py``.

Plain-text briefs live in ``fixtures/styles`` (with line-by-line outlines) and
``fixtures/corpus``; the Word briefs are built by :mod:`tests.content.wordfiles`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.content.documents import read_document
from newsletter.content.model import Issue
from newsletter.content.parser import parse_issue
from newsletter.content.textimport import import_text

from . import wordfiles

HERE = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class Case:
    name: str
    style: str
    load: Callable[[], tuple[bytes, str]]
    title: str
    number: int
    sections: list[tuple[str, int]]  # (title, items)
    meta_rows: int
    tables: int = 0
    images: int = 0
    links: list[str] = field(default_factory=list)  # addresses that must be kept
    gone: list[str] = field(default_factory=list)  # chrome that must not survive


def _file(path: Path) -> Callable[[], tuple[bytes, str]]:
    return lambda: (path.read_bytes(), path.name)


def _built(make: Callable[[], bytes], name: str) -> Callable[[], tuple[bytes, str]]:
    return lambda: (make(), name)


@dataclass
class Outcome:
    issue: Issue
    markdown: str
    images: int


def run(case: Case) -> Outcome:
    data, name = case.load()
    text, source, _ = read_document(data, name=name)
    result = import_text(text, source=source)
    issue = parse_issue(result.markdown)
    return Outcome(issue, result.markdown, len(result.images))


def check(case: Case, got: Outcome) -> dict[str, bool]:
    """Per aspect: does the import match what the brief holds?"""
    issue = got.issue
    structure = [(s.title, len(s.items)) for s in issue.sections]
    meta = sum(len(it.meta) for s in issue.sections for it in s.items)
    tables = got.markdown.count("\n|---")
    return {
        "header": issue.title == case.title and issue.number == case.number,
        "structure": structure == case.sections,
        "metadata": meta == case.meta_rows,
        "tables": tables == case.tables and got.images == case.images,
        "links": all(url in got.markdown for url in case.links),
        "chrome": not any(junk in got.markdown for junk in case.gone),
    }


STYLES = HERE / "styles"
CORPUS = HERE / "corpus"

CASES: list[Case] = [
    Case(
        "wechat-copy",
        "WeChat article copied as text (◆/▶ markers, [key] metadata, tab table)",
        _file(STYLES / "wechat-copy-hans.txt"),
        "国资国企改革观察",
        156,
        [("中央部署", 2), ("地方实践", 1)],
        meta_rows=8,
        tables=1,
        links=["https://www.sasac.gov.cn/n2588035/c1234567/content.html"],
        gone=["蓝字", "听全文", "END", "往期推荐", "在看", "扫一扫", "原创"],
    ),
    Case(
        "wechat-html",
        "saved WeChat article (.html): bold sizes, Part N / 01 markers, k｜v",
        _file(CORPUS / "wechat-article.html"),
        "数据合规一周观察",
        42,
        [("立法动态", 2), ("执法案例", 1)],
        meta_rows=4,
        tables=1,
        images=1,
        links=["https://www.cac.gov.cn/2026-11/28/c_1.htm"],
        gone=["蓝字", "THE END", "往期推荐", "在看", "扫一扫"],
    ),
    Case(
        "gov-html",
        "government site page (.html): h2/h3, nav, breadcrumb, share and footer",
        _file(CORPUS / "gov-page.html"),
        "国资动态周报",
        7,
        [("中央精神", 2), ("本省实践", 1)],
        meta_rows=2,
        tables=1,
        links=["http://www.sasac.gov.cn/n2588025/n2588119/c100.html"],
        gone=["首页", "浏览次数", "分享到", "打印本页", "上一篇", "版权所有", "ICP"],
    ),
    Case(
        "word-analyst",
        "Word, no heading styles: automatic numbering, key tables, link text, image, footer",
        _built(wordfiles.analyst_brief, "analyst.docx"),
        "产业政策双周报",
        23,
        [("制造业数字化", 2), ("绿色低碳", 1)],
        meta_rows=8,
        tables=1,
        images=1,
        links=["https://www.miit.gov.cn/zwgk/zcwj/art/2026/art_0001.html"],
        gone=["注意保密", "第 1 页", "基本实现"],
    ),
    Case(
        "word-styled",
        "Word with Title / Heading 1 / Heading 2 styles (law firm alert)",
        _built(wordfiles.styled_brief, "styled.docx"),
        "金融监管动态",
        11,
        [("监管规则", 2), ("执法动态", 1)],
        meta_rows=4,
        links=["https://www.nfra.gov.cn/cn/view/pages/ItemDetail.html?docId=1"],
    ),
    Case(
        "word-tables",
        "Word, sections by size only, items 1. by hand, tables (broker morning note)",
        _built(wordfiles.table_brief, "morning.docx"),
        "券商晨会纪要",
        312,
        [("宏观与市场", 2), ("行业与公司", 1)],
        meta_rows=3,
        tables=1,
    ),
    Case(
        "plain-gov",
        "text copied from a government site (the product's example brief)",
        _file(EXAMPLES / "brief-plain.txt"),
        "营商环境与数字经济政策周报",
        48,
        [("政策法规", 3), ("要闻速览", 8)],
        meta_rows=23,
        links=["https://www.nda.gov.cn/"],
        gone=["首页 >", "字体", "浏览次数", "分享到", "打印本页"],
    ),
]

CASES.append(
    Case(
        "real-brief",
        "the customer's brief: a Traditional web page copied as text",
        _file(HERE / "real-brief-2021-08-02.txt"),
        "國資國企改革新規與簡析周報",
        0,
        [("國資國企改革政策及簡析", 4), ("國資相關新聞", 18)],
        meta_rows=13,
        links=["http://www.gov.cn/zhengce/content/2021-08/04/content_5629341.htm"],
        gone=["當前位置", "閱讀數", "Baidu", "sogou"],
    )
)

#: plain-text house styles judged line by line against their ``.outline`` files
OUTLINED = sorted(p.stem for p in STYLES.glob("*.txt"))


def outline_exact(name: str) -> bool:
    text = (STYLES / f"{name}.txt").read_text(encoding="utf-8")
    got = [f"{n} {cls}" for n, cls, _ in import_text(text).outline if cls != "blank"]
    want = (STYLES / f"{name}.outline").read_text(encoding="utf-8").splitlines()
    return got == [line for line in want if line and not line.startswith("#")]
