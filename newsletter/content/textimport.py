"""Plain text copied from a web page or a Word file → the issue Markdown dialect.

A line classifier driven by the pattern families of
``newsletter/resources/data/import-patterns.yaml`` (see :mod:`newsletter.content.patterns`).
Each line is normalised for matching (script folded to Simplified, width
folded, spaces between single characters removed) and put in one class:

``chrome``    page furniture (breadcrumbs, counters, share/print controls,
              上一篇/下一篇, copyright and ICP lines, trailing tracker words);
``contents``  a hand-written contents list: a run of numbered headings that
              repeats later in the text (and its heading line, 目录 …);
``title`` / ``header``  the title and header fields (period, number, source …);
``section`` / ``item``  headings of the two outermost numbering families found;
``meta``      an item's ``key：value`` lines (the value may be on the next line);
``analysis``  an analysis marker (丨…丨, 【…】, ▍…, 点评：…) and the text after it;
``summary``, ``body``, ``blank``.

Guarantees:

* The returned ``markdown`` is accepted by
  :func:`newsletter.content.parser.parse_issue` as it is, whatever the input:
  prose is escaped so that it can never turn into Markdown structure.
* :attr:`TextImportResult.outline` gives every input line (1-based) with its
  class.  Only ``chrome`` and ``contents`` lines are dropped, and both are
  reported; everything else is placed in the output.
* Numbered lines are taken as headings only when their number continues the
  current sequence (or jumps forward with a short title, with a warning), so
  numbered lists inside an item's text stay in the text.
* ``hints`` (``{line: class}``, e.g. kept in the issue's ``import_hints``
  front matter) override the classifier for those lines.
* Input with nothing to import (empty, or only chrome) raises
  :class:`TextImportError`, one line in Chinese and English.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from newsletter.content.markers import DocFamily, discover, read_marker
from newsletter.content.parser import DEFAULT_ANALYSIS_LABEL, format_numeral
from newsletter.content.patterns import (
    Patterns,
    clean,
    normalise,
    normalise_lines,
    numeral_value,
    patterns,
)
from newsletter.content.source import Image, SourceText
from newsletter.core.catalogue import coded
from newsletter.core.errors import IssueFormatError

__all__ = [
    "CLASSES",
    "TextImportError",
    "TextImportResult",
    "default_target",
    "import_issue_text",
    "import_text",
    "parse_hints",
]

#: The classes a line can be given (and that a hint may name).
CLASSES = (
    "blank",
    "chrome",
    "contents",
    "title",
    "header",
    "section",
    "item",
    "meta",
    "analysis",
    "summary",
    "table",
    "image",
    "body",
)


class TextImportError(IssueFormatError):
    """The text cannot be imported at all (nothing but chrome, say)."""


@dataclass(slots=True)
class TextImportResult:
    markdown: str
    unplaced: list[tuple[int, str]] = field(default_factory=list)
    chrome: list[tuple[int, str]] = field(default_factory=list)
    contents: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    outline: list[tuple[int, str, str]] = field(default_factory=list)  # (line, class, text)
    script: str = "Hans"
    images: list[Image] = field(default_factory=list)  # to write under images/
    reasons: dict[int, str] = field(default_factory=dict)  # line → why it got its class


_URL_LINE_RE = re.compile(r"^<?(https?://[^\s<>]+)>?$")
_SAFE_URL_RE = re.compile(r"^https?://[A-Za-z0-9\-.~:/?#@!$&'()+,;=%]+$")
_URL_RE = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_SPECIALS = re.compile(r"([\\`*_\[\]<>#|~&!])")
_KV_RE = re.compile(r"^(?P<key>[\u4e00-\u9fff][\u4e00-\u9fff\s]{0,11}?)\s*[:|]\s*(?P<value>.*)$")
_KV_BRACKET_RE = re.compile(r"^[【\[](?P<key>[\u4e00-\u9fff]{2,8})[】\]]\s*(?P<value>\S.*)$")
_LATIN_TAIL = re.compile(r"^[A-Za-z0-9 ._\-]+$")
_KEY_TIGHT = re.compile(r"^(?P<key>[\u4e00-\u9fff]{2,8}?)(?P<value>(?:\d|https?://).*)$")


#: Chinese labels of the classes, for the outline (console and --outline)
CLASS_LABELS = {
    "blank": "空行",
    "chrome": "页面杂项",
    "contents": "目录",
    "title": "标题",
    "header": "页首信息",
    "section": "章节",
    "item": "条目",
    "meta": "元数据",
    "analysis": "点评",
    "summary": "摘要",
    "table": "表格",
    "image": "图片",
    "body": "正文",
}
_CHROME_REASONS = {
    "breadcrumb": "网页导航路径",
    "counter": "阅读或点击计数",
    "controls": "网页按钮（打印、关闭、字号）",
    "share": "分享或扫码提示",
    "prev-next": "上一篇/下一篇",
    "editor": "责任编辑署名",
    "copyright": "版权或备案信息",
    "related": "相关推荐列表",
    "follow": "公众号顶部提示（关注、收听、署名）",
    "wechat": "公众号底部按钮",
    "end": "结束标记",
    "tracker": "统计代码残留",
}
_CLASS_REASONS = {
    "contents": "与正文标题重复的目录",
    "title": "首个短行",
    "header": "页首的“键：值”或期数、时间",
    "meta": "条目下的“键：值”",
    "analysis": "点评标记或重复的小标题之后",
    "summary": "摘要键",
    "table": "列数一致的制表符对齐行",
    "image": "文档中的图片",
}


def _shape_label(shape: str) -> str:
    """``〈cn〉、`` → ``一、``: a marker shape as people write it."""
    example = {"cn": "一", "arabic": "1", "zero": "01", "circled": "①", "keycap": "1️⃣",
               "formal": "壹", "roman": "Ⅰ", "ROMAN": "I", "upper": "A", "lower": "a"}  # fmt: skip
    out = re.sub(r"〈(\w+)〉", lambda m: example.get(m.group(1), "N"), shape)
    return out.removeprefix("glyph ")


# --------------------------------------------------------------------------- escaping


def _escape(text: str) -> str:
    """Make prose inert Markdown: escape specials and anything that could start a block."""
    out = _SPECIALS.sub(r"\\\1", text)
    out = re.sub(r"^(\d+)([.)])", r"\1\\\2", out)
    out = re.sub(r"^([-+=:])", r"\\\1", out)
    return out


def _prose(text: str, links: list[tuple[str, str]] | None = None) -> str:
    """Escape prose, turn bare http(s) URLs into autolinks and link texts into links."""
    out = _autolinked(text)
    for label, url in links or []:
        shown = _escape(label)
        if not shown or url in out or f"[{shown}]" in out:
            continue
        out = out.replace(shown, f"[{shown}](<{url}>)", 1)
    return out


def _autolinked(text: str) -> str:
    parts: list[str] = []
    pos = 0
    for m in _URL_RE.finditer(text):
        url = m.group(0).rstrip(".,;:!?'\")]")
        parts.append(_escape(text[pos : m.start()]))
        parts.append(f"<{url}>")
        pos = m.start() + len(url)
    parts.append(_escape(text[pos:]))
    return "".join(parts)


def _meta_value(value: str) -> str:
    """URLs stay readable (bare, or as an autolink when they hold Markdown characters)."""
    if _URL_LINE_RE.match(value) and " " not in value:
        url = value.strip("<>")
        # "_" between letters/digits can never start emphasis, so it is safe too
        safe = _SAFE_URL_RE.match(re.sub(r"(?<=[A-Za-z0-9])_(?=[A-Za-z0-9])", "", url))
        return url if safe else f"<{url}>"
    return _escape(value)


def _table(rows: list[list[str]]) -> str:
    width = max(len(r) for r in rows)

    def row(cells: list[str]) -> str:
        cells = [_escape(c.strip()) or " " for c in cells] + [" "] * (width - len(cells))
        return "| " + " | ".join(cells) + " |"

    return "\n".join([row(rows[0]), "|" + "---|" * width, *(row(r) for r in rows[1:])])


# --------------------------------------------------------------------------- structure


@dataclass
class _Item:
    number: int
    title: str
    meta: list[tuple[str, str, str | None]] = field(default_factory=list)  # key, value, role
    body: list[str] = field(default_factory=list)
    analysis_label: str | None = None
    analysis: list[str] = field(default_factory=list)
    summary: str | None = None
    meta_open: bool = True  # still right under the heading: unknown keys are metadata

    def has_role(self, role: str) -> bool:
        return any(r == role for _, _, r in self.meta)


@dataclass
class _Section:
    numeral: str
    number: int
    title: str
    intro: list[str] = field(default_factory=list)
    items: list[_Item] = field(default_factory=list)


@dataclass(slots=True)
class _Line:
    n: int
    raw: str
    text: str  # clean(raw): as written
    shown: str  # display form (width folded, gaps collapsed), source script
    norm: str  # matching form (Simplified)
    cls: str = ""
    heading: tuple[DocFamily, int, str] | None = None  # family, number, title as written
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, address)
    image: Image | None = None


def _key(s: str) -> str:
    """Comparison key of a heading title: letters and digits only, no page number."""
    s = re.sub(r"(?:[.…·．\s]{2,}|\s+)\d{1,3}$", "", s)  # 政策解读……3
    return re.sub(r"[\W_]+", "", s)


def _same_title(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 6 and long_.startswith(short)


def _slice(line: _Line, start: int) -> str:
    """The part of the line as written from ``start`` of its normalised form."""
    if len(line.shown) == len(line.norm):
        return line.shown[start:].strip()
    return line.norm[start:].strip()


def _format_period(m: re.Match[str]) -> str:
    y1, m1, d1 = m.group("y1"), int(m.group("m1")), int(m.group("d1"))
    y2 = m.group("y2") or y1
    m2, d2 = int(m.group("m2")), int(m.group("d2"))
    return f"{y1}.{m1:02d}.{d1:02d}–{y2}.{m2:02d}.{d2:02d}"


class _Importer:
    def __init__(
        self, lines: list[_Line], p: Patterns, hints: Mapping[int, str], weak: set[int]
    ) -> None:
        self.lines = lines
        self.p = p
        self.hints = dict(hints)
        self.weak = weak  # hints from formatting alone: a marker in the text outranks them
        self.user_hints: set[int] = set()
        self.learnt: set[int] = set()
        self.header: dict[str, Any] = {}
        self.intro: list[str] = []
        self.sections: list[_Section] = []
        self.result = TextImportResult("")
        self.table_rows: list[list[str]] = []
        self.list_next = 0
        self.pending: tuple[_Item | None, str, str | None] | None = None  # awaiting a value
        self.pending_line: _Line | None = None
        self.labels: set[str] = set()
        self.section_family: DocFamily | None = None
        self.item_family: DocFamily | None = None

    # -- pre-pass: chrome, headings, contents, families -------------------------
    def prepass(self) -> None:
        p = self.p
        for ln in self.lines:
            hint = self.hints.get(ln.n)
            if not ln.text:
                ln.cls = "blank"
            elif hint in ("chrome", "contents"):
                ln.cls = hint
            elif hint is None and p.is_chrome(ln.norm):
                ln.cls = "chrome"
        self.bottom()
        content = [ln for ln in self.lines if not ln.cls]
        families = discover(
            [ln.norm for ln in content], heading_max=p.heading_max, sentence_end=p.sentence_end
        )
        by_shape = {fam.name: fam for fam in families}
        for ln in content:
            marker = read_marker(ln.norm) if ln.n in self.weak else None
            if marker is not None and marker.shape in by_shape:
                del self.hints[ln.n]
        for ln in content:
            if self.hints.get(ln.n) not in (None, "section", "item"):
                continue
            marker = read_marker(ln.norm)
            fam = by_shape.get(marker.shape) if marker is not None else None
            if marker is None or fam is None:
                continue
            title_norm = ln.norm[marker.title_start :].strip()
            if len(title_norm) <= p.heading_max and not p.sentence_end.search(title_norm):
                ln.heading = (fam, marker.number, _slice(ln, marker.title_start))
        # trailing Latin-only lines (tracker leftovers) at the very end
        for ln in reversed(self.lines):
            if ln.cls == "blank" or ln.cls == "chrome":
                continue
            if self.hints.get(ln.n) is None and (
                len(ln.norm) <= p.tail_max and _LATIN_TAIL.match(ln.norm)
            ):
                ln.cls = "chrome"
                continue
            break
        self.find_contents()
        self.choose_families()
        self.find_labels()

    def bottom(self) -> None:
        """The page's bottom: every line after an end marker (— END —), and the short lines
        after a related-articles heading (往期推荐) up to the next long one."""
        p = self.p
        start = len(self.lines) // 3
        for k in range(start, len(self.lines)):
            ln = self.lines[k]
            kind = p.is_chrome(ln.norm) if ln.cls == "chrome" else None
            if kind not in ("end", "related"):
                continue
            for later in self.lines[k + 1 :]:
                if later.cls or self.hints.get(later.n) is not None:
                    continue
                if kind == "related" and len(later.norm) > p.heading_max:
                    break
                later.cls = "chrome"
            return

    def find_contents(self) -> None:
        p = self.p
        content = [ln for ln in self.lines if ln.cls not in ("blank", "chrome")]
        runs: list[tuple[int, int]] = []  # [start, end) indexes into content
        k = 0
        while k < len(content):
            if content[k].heading is None:
                k += 1
                continue
            j = k
            while j < len(content) and content[j].heading is not None:
                j += 1
            runs.append((k, j))
            k = j
        keys = {i: _key(self.title_of(ln)) for i, ln in enumerate(content) if ln.heading}
        for start, end in runs:
            if end - start < 2:  # a list has at least two entries
                continue
            # the list ends where its first entry comes back (the body's own heading)
            first = keys[start]
            again = next(
                (j for j in sorted(keys) if j > start and _same_title(keys[j], first)), end
            )
            stop = min(again, end)
            run = range(start, stop)
            later = [keys[j] for j in keys if j >= stop]
            repeated = sum(1 for i in run if any(_same_title(keys[i], t) for t in later))
            headed = start > 0 and p.contents_heading.match(content[start - 1].norm) is not None
            if len(run) >= 2 and repeated >= (0.5 if headed else 0.8) * len(run):
                for i in run:
                    if self.hints.get(content[i].n) is None:
                        content[i].cls = "contents"
                if headed and self.hints.get(content[start - 1].n) is None:
                    content[start - 1].cls = "contents"
        for i, ln in enumerate(content):  # a contents heading over an unnumbered list
            if ln.cls or self.hints.get(ln.n) is not None or not p.contents_heading.match(ln.norm):
                continue
            ln.cls = "contents"
            # entries without numbers: short lines that come back later as headings
            for j in range(i + 1, len(content)):
                entry = content[j]
                if entry.heading is not None or len(entry.norm) > p.heading_max:
                    break
                key = _key(entry.text)
                if not key or not any(_same_title(key, keys[h]) for h in keys if h > j):
                    break
                if self.hints.get(entry.n) is None:
                    entry.cls = "contents"

    def find_labels(self) -> None:
        """Block labels of this house style: a short standalone line, not a heading or a
        ``key：value``, that comes back word for word (研究院观点 under each item)."""
        seen: dict[str, int] = {}
        for ln in self.lines:
            norm = ln.norm
            if ln.cls or ln.heading is not None or not 2 <= len(norm) <= 12:
                continue
            if self.p.sentence_end.search(norm) or re.search(r"[:\t/]|\d", norm):
                continue
            seen[norm] = seen.get(norm, 0) + 1
        self.labels = {norm for norm, count in seen.items() if count >= 2}

    @staticmethod
    def title_of(ln: _Line) -> str:
        return ln.heading[2] if ln.heading is not None else ln.text

    def choose_families(self) -> None:
        """Sections: the family that first appears (outside a contents list) numbered 1 or
        with a glyph; items: the next such family.  Later families stay in the text."""
        order: list[DocFamily] = []
        for ln in self.lines:
            if ln.heading is None or ln.cls:
                continue
            fam, number, _ = ln.heading
            if fam not in order and number in (0, 1):
                order.append(fam)
        self.section_family = order[0] if order else None
        self.item_family = order[1] if len(order) > 1 else None
        if any(cls == "section" for cls in self.hints.values()):
            # sections marked by the document's formatting: the text's first family is items
            self.section_family, self.item_family = None, self.section_family
        for ln in self.lines:  # a hinted item/section heading fixes the family
            hint = self.hints.get(ln.n)
            if ln.heading is not None and hint == "item" and self.item_family is None:
                self.item_family = ln.heading[0]

    # -- state helpers -------------------------------------------------------
    @property
    def section(self) -> _Section | None:
        return self.sections[-1] if self.sections else None

    @property
    def item(self) -> _Item | None:
        s = self.section
        return s.items[-1] if s is not None and s.items else None

    def target(self) -> list[str]:
        it = self.item
        if it is not None:
            it.meta_open = False
            return it.analysis if it.analysis_label is not None else it.body
        s = self.section
        return s.intro if s is not None else self.intro

    def mark(self, ln: _Line, cls: str) -> None:
        ln.cls = cls

    def flush_table(self) -> None:
        if self.table_rows:
            self.target().append(_table(self.table_rows))
            self.table_rows = []

    # -- classification ----------------------------------------------------------
    def run(self) -> None:
        for ln in self.lines:
            self.feed(ln)
        self.flush_table()
        self.drop_pending()
        for ln in self.lines:
            self.result.outline.append((ln.n, ln.cls or "body", ln.text))
            if ln.cls != "blank":
                self.result.reasons[ln.n] = self.reason(ln)
            if ln.cls == "chrome":
                self.result.chrome.append((ln.n, ln.text))
            elif ln.cls == "contents":
                self.result.contents.append((ln.n, ln.text))

    def reason(self, ln: _Line) -> str:
        """Why the line got its class, in Chinese, for the outline."""
        cls = ln.cls or "body"
        if ln.n in self.user_hints:
            return "编辑更正"
        if ln.n in self.learnt:
            return "刊物的导入规则（以前的更正）"
        if ln.n in self.hints and ln.n not in self.weak:
            return "文档标题样式" if cls in ("title", "section", "item") else "文档结构"
        if ln.n in self.weak and ln.n in self.hints:
            return "字号或加粗"
        if cls == "chrome":
            family = self.p.is_chrome(ln.norm)
            return _CHROME_REASONS.get(family or "", "结尾标记之后的页面杂项")
        if cls in ("section", "item") and ln.heading is not None:
            level = "第一层" if cls == "section" else "第二层"
            return f"行首标记“{_shape_label(ln.heading[0].name)}”重复出现（{level}）"
        return _CLASS_REASONS.get(cls, "正文")

    def feed(self, ln: _Line) -> None:
        if ln.image is not None:
            self.flush_table()
            self.drop_pending()
            ref = f"![{_escape(ln.image.alt)}](images/{ln.image.name})"
            (self.target() if self.sections else self.intro).append(ref)
            self.result.images.append(ln.image)
            self.mark(ln, "image")
            return
        if ln.cls in ("blank", "chrome", "contents"):
            if ln.cls == "blank":
                self.flush_table()
            return
        hint = self.hints.get(ln.n)
        if hint is not None:
            self.flush_table()
            self.drop_pending()
            self.hinted(ln, hint)
            return
        if self.pending is not None and self.pending_value(ln):
            return
        self.drop_pending()
        cells = ln.raw.strip().split("\t")
        if len(cells) >= 2 and self.sections:
            self.table_rows.append(cells)
            self.mark(ln, "table")
            return
        self.flush_table()
        for handler in (
            self.section_heading,
            self.item_heading,
            self.header_line,
            self.marker,
            self.key_value,
            self.url_line,
        ):
            if handler(ln):
                return
        self.prose(ln)

    def hinted(self, ln: _Line, hint: str) -> None:
        if hint == "section":
            title = ln.heading[2] if ln.heading else _unenclosed(ln)
            number = len(self.sections) + 1
            self.sections.append(_Section(format_numeral(min(number, 99)), number, title))
            self.mark(ln, "section")
        elif hint == "item":
            if self.section is None:
                self.sections.append(_Section("一", 1, ""))
            s = self.section
            assert s is not None
            title = ln.heading[2] if ln.heading else _unenclosed(ln)
            s.items.append(_Item(len(s.items) + 1, title))
            self.mark(ln, "item")
        elif hint == "title":
            self.take_title(ln)
        elif hint == "analysis":
            it = self.item
            if it is not None and it.analysis_label is None:
                label = self.analysis_label(ln)
                it.analysis_label = (label[0] if label else ln.text.strip("丨|【】[]▍ ")) or (
                    DEFAULT_ANALYSIS_LABEL
                )
                it.meta_open = False
                self.mark(ln, "analysis")
            else:
                self.prose(ln)
        elif hint in ("meta", "header") and (self.key_value(ln) or self.header_line(ln)):
            return
        else:
            self.prose(ln)

    def drop_pending(self) -> None:
        """A key whose value never came is text after all: nothing is lost."""
        line, self.pending_line = self.pending_line, None
        if self.pending is not None and line is not None:
            self.pending = None
            self.prose(line)
        self.pending = None

    def pending_value(self, ln: _Line) -> bool:
        """A header or meta key with an empty value takes the next line as its value."""
        assert self.pending is not None
        it, key, role = self.pending
        is_url = _URL_LINE_RE.match(ln.text) is not None
        if (
            ln.heading is not None
            or "\t" in ln.raw.strip()
            or (not is_url and (len(ln.text) > self.p.meta_value_max or role == "url"))
        ):
            return False
        self.pending = None
        self.pending_line = None
        if it is None:
            if not self.header_field(key, ln.text, role or ""):
                return False
        else:
            it.meta.append((key, ln.text.strip("<>") if is_url else ln.text, role))
        self.mark(ln, "header" if it is None else "meta")
        return True

    def section_heading(self, ln: _Line) -> bool:
        if ln.heading is None or ln.heading[0] != self.section_family:
            return False
        _, number, title = ln.heading
        expected = len(self.sections) + 1
        number = number or expected  # a glyph counts by position
        if number < expected:
            return False
        if number > expected:
            if len(title) > 16:
                return False
            self.result.warnings.append(
                f"第{ln.n}行：章节编号 {number} 接在 {expected - 1} 之后，编号不连续 / "
                f"line {ln.n}: section {number} follows section {expected - 1}; numbering skips"
            )
        numeral = format_numeral(number) if 1 <= number <= 99 else str(number)
        self.sections.append(_Section(numeral, number, title))
        self.list_next = 0
        self.mark(ln, "section")
        return True

    def item_heading(self, ln: _Line) -> bool:
        if ln.heading is None or ln.heading[0] != self.item_family:
            return False
        _, number, title = ln.heading
        s = self.section
        if s is None:
            return False
        number = number or len(s.items) + 1
        if not self.is_item_heading(ln.n, s, number, title):
            # a numbered line inside an item's text: keep counting that list
            self.list_next = number + 1 if number in (1, self.list_next) else self.list_next
            return False
        s.items.append(_Item(number, title))
        if ln.links:  # a linked title: its address is the item's link
            s.items[-1].meta.append(("原文链接", ln.links[0][1], "url"))
        self.list_next = 0
        self.mark(ln, "item")
        return True

    def is_item_heading(self, n: int, s: _Section, number: int, title: str) -> bool:
        expected = len(s.items) + 1
        if number == expected:
            # "2." right after an in-text "1." is a list unless it looks like a title
            return number != self.list_next or len(title) <= 40
        if number < expected or number == self.list_next:
            return False
        self.result.warnings.append(
            f"第{n}行：条目编号 {number} 接在 {expected - 1} 之后，编号不连续 / "
            f"line {n}: item {number} follows item {expected - 1}; numbering skips"
        )
        return True

    def header_line(self, ln: _Line) -> bool:
        """Title, period, issue number and ``key：value`` fields before the first section."""
        if self.sections:
            return False
        p = self.p
        m = _KV_RE.match(ln.norm)
        if m is not None:
            key = re.sub(r"\s", "", m.group("key"))
            role = p.header_keys.get(key)
            if role is not None:
                value = _slice(ln, m.start("value"))
                if value and not self.header_field(key, value, role):
                    return False
                if not value:
                    self.pending, self.pending_line = (None, key, role), ln
                self.mark(ln, "header")
                return True
        whole_period = p.period.fullmatch(ln.norm.strip("()[] "))
        if whole_period is not None and self._set("period", _format_period(whole_period)):
            self.mark(ln, "header")
            return True
        number = p.issue_number(ln.norm)
        rest = ln.norm[: number.start()] + ln.norm[number.end() :] if number else ""
        rest = re.sub(r"\d{4}\s*年|总第\s*\d+\s*期|[\W_]", "", rest)
        if (
            number is not None
            and not rest
            and self._set("number", numeral_value(number.group("num")))
        ):
            self.mark(ln, "header")
            return True
        short = len(ln.norm) <= p.heading_max and not p.sentence_end.search(ln.norm)
        if short and "title" not in self.header and not self.intro and ln.heading is None:
            self.take_title(ln)
            return True
        return False

    def take_title(self, ln: _Line) -> None:
        """The title line, with a period or issue number it carries moved to their fields."""
        p = self.p
        title = ln.shown
        same = len(ln.shown) == len(ln.norm)
        cuts: list[tuple[int, int]] = []
        period = p.period.search(ln.norm)
        if period is not None:
            self.header.setdefault("period", _format_period(period))
            cuts.append(period.span())
        number = p.issue_number(ln.norm)
        if number is not None:
            self.header.setdefault("number", numeral_value(number.group("num")))
            start = number.start()
            year = re.search(r"\d{4}\s*年\s*$", ln.norm[:start])
            cuts.append((year.start() if year else start, number.end()))
        if same:
            for a, b in sorted(cuts, reverse=True):
                title = title[:a] + title[b:]
            title = re.sub(r"[(\[（【〔]\s*[)\]）】〕]", "", title)
            title = title.strip(" -–—_|·()[]（）:：")
        # a leading 【label】 or [label] names the series, not this issue
        series = re.match(
            r"^\s*[【\[〔［]\s*([^【】\[\]〔〕［］]{1,16}?)\s*[】\]〕］]\s*(?=\S)", title
        )
        if series is not None:
            self.header.setdefault("series", series.group(1))
            title = title[series.end() :]
        title = title.strip(" -–—_|·()[]（）【】:：")
        self.header["title"] = title.strip() or ln.shown
        self.mark(ln, "title")

    def header_field(self, key: str, value: str, role: str) -> bool:
        """Set a header field; ``False`` (the line stays text) when it cannot be read or
        when the field already holds another value, so that nothing is lost."""
        if role == "number":
            m = self.p.issue_number(value) or re.search(r"(?P<num>\d+)", value)
            number = numeral_value(m.group("num")) if m else None
            if number is None:
                self.result.warnings.append(
                    f"无法从“{key}：{value}”读出期数 / cannot read an issue number from it"
                )
                return False
            return self._set("number", number)
        return self._set(role, value)

    def _set(self, name: str, value: Any) -> bool:
        if self.header.get(name, value) != value:
            return False
        self.header[name] = value
        return True

    def analysis_label(self, ln: _Line) -> tuple[str, str] | None:
        """``(label, text after it)`` when the line is an analysis marker."""
        a = self.p.analysis
        words = self.p.analysis_words
        for kind in ("enclosed", "bracketed", "bar", "lead"):
            m = a[kind].match(ln.norm)
            if m is None:
                continue
            label_norm = m.group("label").strip()
            if kind in ("bracketed", "bar") and not any(w in label_norm for w in words):
                continue
            label = _slice(ln, m.start("label"))
            rest = ""
            if kind == "lead":
                rest = _slice(ln, m.start("rest")) if m.group("rest") else ""
                label = label[: len(label) - len(rest)] if rest else label
            label = label.strip(" :：丨|】]")
            return label or DEFAULT_ANALYSIS_LABEL, rest
        if ln.norm in self.labels:
            return ln.shown.strip(" :：丨|【】[]▍"), ""
        return None

    def marker(self, ln: _Line) -> bool:
        found = self.analysis_label(ln)
        if found is None:
            return False
        label, rest = found
        it = self.item
        if it is None or it.analysis_label is not None:
            return False  # kept as text
        it.analysis_label = label
        it.meta_open = False
        if rest:
            it.analysis.append(_prose(rest))
        self.mark(ln, "analysis")
        return True

    def key_value(self, ln: _Line) -> bool:
        it = self.item
        if it is None or it.analysis_label is not None:
            return False
        p = self.p
        m = _KV_RE.match(ln.norm) or _KV_BRACKET_RE.match(ln.norm)
        if m is None:
            m = _KEY_TIGHT.match(ln.norm)
            if m is None or m.group("key") not in p.meta_keys:
                return False
        key_norm = re.sub(r"\s", "", m.group("key"))
        if len(key_norm) > p.meta_key_max:
            return False
        value = _slice(ln, m.start("value"))
        for label, url in ln.links:  # 原文链接：点击查看 (a link) → the address
            if p.meta_keys.get(key_norm) == "url" or value.strip() == label:
                value = url
                break
        same = len(ln.shown) == len(ln.norm)
        key = re.sub(r"\s", "", ln.shown[m.start("key") : m.end("key")]) if same else key_norm
        if key_norm in p.summary_keys:
            it.summary = value
            self.mark(ln, "summary")
            return True
        role = p.meta_keys.get(key_norm)
        if role is None and not (it.meta_open and len(value) <= p.meta_value_max):
            return False
        if not value:
            if role is None and len(key_norm) > 6:
                return False  # "情况如下：" introduces what follows; it is not a key
            self.pending, self.pending_line = (it, key, role), ln
        else:
            it.meta.append((key, value, role))
        self.mark(ln, "meta")
        return True

    def url_line(self, ln: _Line) -> bool:
        m = _URL_LINE_RE.match(ln.text)
        whole = [u for t, u in ln.links if t == ln.text.strip()]
        if m is None and not whole:
            return False
        url = m.group(1) if m is not None else whole[0]
        it = self.item
        if it is not None and it.analysis_label is None and not it.has_role("url"):
            policy = it.has_role("issuer") or it.has_role("doc_number")
            it.meta.append(("原文链接" if policy else "链接", url, "url"))
            self.mark(ln, "meta")
        else:
            self.target().append(f"<{url}>")
            self.mark(ln, "body")
        return True

    def prose(self, ln: _Line) -> None:
        it = self.item
        in_analysis = it is not None and it.analysis_label is not None
        if self.sections:
            self.target().append(_prose(ln.text, ln.links))
        else:
            self.intro.append(_prose(ln.text, ln.links))
        self.mark(ln, "analysis" if in_analysis else "body")

    # -- output ----------------------------------------------------------------
    def finish_header(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        fm = dict(self.header)
        fm.update({k: v for k, v in overrides.items() if v is not None})
        if not fm.get("title"):
            fm["title"] = "未命名"
            self.result.warnings.append("未找到标题，暂定为“未命名” / no title found")
        if not fm.get("number"):
            fm.pop("number", None)
            self.result.warnings.append(
                "未找到期数（如“第N期”）：请在导入时填写期数 / no issue number found; give one"
            )
        order = ["title", "number", "period", "date", "source", "author", "publication"]
        order += ["preheader"]
        return {k: fm[k] for k in order if k in fm} | {
            k: v for k, v in fm.items() if k not in order
        }

    def render(self, overrides: Mapping[str, Any]) -> str:
        fm = self.finish_header(overrides)
        out = ["---", yaml.safe_dump(fm, allow_unicode=True, sort_keys=False, width=10**6).strip()]
        out += ["---", ""]
        out += [p + "\n" for p in self.intro]
        for s in self.sections:
            out += [f"## {s.numeral}、{_escape(s.title)}", ""]
            out += [p + "\n" for p in s.intro]
            for it in s.items:
                out += _render_item(it)
        return "\n".join(out).rstrip() + "\n"


def _render_item(it: _Item) -> list[str]:
    out = [f"### {it.number}. {_escape(it.title)}", ""]
    if it.meta:
        out += ["::: meta", *(f"{k}：{_meta_value(v)}" for k, v, _ in it.meta), ":::", ""]
    out += [p + "\n" for p in it.body]
    if it.analysis_label is not None:
        out += [f"::: analysis {_escape(it.analysis_label)}", ""]
        out += [p + "\n" for p in it.analysis]
        out += [":::", ""]
    if it.summary:
        out += ["::: summary", _escape(it.summary), ":::", ""]
    return out


def parse_hints(values: Mapping[Any, Any] | list[str] | None) -> dict[int, str]:
    """``{42: "item"}`` or ``["42=item"]`` → ``{42: "item"}``; raises ``ValueError`` when invalid."""
    out: dict[int, str] = {}
    if not values:
        return out
    pairs = (
        list(values.items())
        if isinstance(values, Mapping)
        else [tuple(v.split("=", 1)) if "=" in v else (v, "") for v in values]
    )
    for line, cls in pairs:
        try:
            n = int(str(line).strip())
        except ValueError:
            raise ValueError(f"hint {line}={cls}: the line must be a number") from None
        name = str(cls).strip()
        if name not in CLASSES or n < 1:
            raise ValueError(
                f"hint {line}={cls}: expected LINE=CLASS with CLASS one of {', '.join(CLASSES)}"
            )
        out[n] = name
    return out


def rule_for(text: str, cls: str) -> tuple[str, str] | None:
    """The pattern that correcting ``text`` to ``cls`` teaches a publication.

    A line that starts with a marker teaches its marker's shape ("lines that start
    like this are items"); any other line teaches itself, normalised ("this line is
    page chrome").  Never a line number, so it applies to next week's brief.
    """
    norm = normalise(text)
    if not norm or cls not in CLASSES or cls == "blank":
        return None
    marker = read_marker(norm)
    if marker is not None and cls in ("section", "item", "body"):
        return "marker", marker.shape
    enclosed = _enclosure(norm)
    if enclosed is not None and cls in ("section", "item", "analysis"):
        return "enclosed", enclosed
    return "line", norm[:200]


_PAIRS = {"【": "】", "[": "]", "〔": "〕", "(": ")", "《": "》", "「": "」", "『": "』", "<": ">"}


def _unenclosed(ln: _Line) -> str:
    """A heading written as ``【要闻】`` is titled ``要闻``."""
    text = ln.text.strip()
    if _enclosure(ln.norm) is not None and len(text) >= 3:
        return text[1:-1].strip() or text
    return text


def _enclosure(norm: str) -> str | None:
    """``【要闻】`` → ``【】``: a short line wholly inside one pair of brackets."""
    if len(norm) < 3 or len(norm) > 20 or norm[0] not in _PAIRS:
        return None
    close = _PAIRS[norm[0]]
    inner = norm[1:-1]
    if norm[-1] != close or norm[0] in inner or close in inner:
        return None
    return norm[0] + close


def _learnt(norms: list[str], rules: Sequence[tuple[str, str, str]]) -> dict[int, str]:
    """Line → class for every line a publication's rules cover."""
    by_line = {pattern: cls for kind, pattern, cls in rules if kind == "line"}
    by_marker = {pattern: cls for kind, pattern, cls in rules if kind == "marker"}
    by_pair = {pattern: cls for kind, pattern, cls in rules if kind == "enclosed"}
    out: dict[int, str] = {}
    for n, norm in enumerate(norms, 1):
        if not norm:
            continue
        if norm in by_line:
            out[n] = by_line[norm]
        elif by_pair and (pair := _enclosure(norm)) in by_pair:
            out[n] = by_pair[pair]
        elif (marker := read_marker(norm)) is not None and marker.shape in by_marker:
            out[n] = by_marker[marker.shape]
    return out


def import_text(
    text: str,
    *,
    front_matter: Mapping[str, Any] | None = None,
    hints: Mapping[int, str] | None = None,
    source: SourceText | None = None,
    rules: Sequence[tuple[str, str, str]] = (),
) -> TextImportResult:
    """Convert a plain-text brief into issue Markdown (see the module docstring).

    ``front_matter`` values override or complete what was read from the
    header lines (e.g. ``{"number": 48}`` when the text has no 期数 line).
    ``hints`` maps 1-based line numbers to a class of :data:`CLASSES`.
    ``source`` (a Word or HTML document read into lines) replaces ``text`` and
    brings the structure its author marked, link addresses and images.
    ``rules`` are the publication's learnt house style, ``(kind, pattern, class)``
    from :func:`rule_for`; they outrank the document, and ``hints`` outrank them.
    """
    from newsletter.content.script import detect_script

    hints = dict(hints or {})
    if source is not None:
        text = source.text
    # split on newlines only, so line numbers match what an editor shows
    raws = re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff"))
    shown, norm = normalise_lines(raws)
    lines = [
        _Line(n, raw, clean(raw), s, m)
        for n, (raw, s, m) in enumerate(zip(raws, shown, norm, strict=True), 1)
    ]
    if source is not None:
        for ln in lines:
            ln.links = source.links.get(ln.n, [])
            ln.image = source.images.get(ln.n)
    structure = source.structure if source is not None else {}
    learnt = _learnt(norm, rules) if rules else {}
    weak = (source.weak - set(hints) - set(learnt)) if source is not None else set()
    imp = _Importer(lines, patterns(), structure | learnt | hints, weak)
    imp.user_hints = set(hints)
    imp.learnt = set(learnt) - set(hints)
    imp.prepass()
    imp.run()
    kept = [ln for ln in lines if ln.cls not in ("blank", "chrome", "contents")]
    if not kept:
        what = "只有网页框架 / only page chrome" if imp.result.chrome else "为空 / is empty"
        zh_what, en_what = what.split(" / ")
        raise coded(
            TextImportError, "import.nothing", where={"line": 1}, what_zh=zh_what, what_en=en_what
        )
    imp.result.script = detect_script(text)
    fm = dict(front_matter or {})
    if hints:
        fm["import_hints"] = dict(sorted(hints.items()))
    imp.result.markdown = imp.render(fm)
    return imp.result


def _kept_hints(target: Path) -> dict[int, str]:
    """``import_hints`` of an earlier import written to ``target`` (empty when none)."""
    try:
        head = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    m = re.match(r"---\n(.*?)\n---\n", head, re.S)
    if m is None:
        return {}
    try:
        data = yaml.safe_load(m.group(1))
        return parse_hints(data.get("import_hints") if isinstance(data, dict) else None)
    except (yaml.YAMLError, ValueError):
        return {}


def default_target(source: Path) -> Path:
    """``brief.txt`` → ``brief.md``; an ``.md`` input gets ``brief.import.md``."""
    target = source.with_suffix(".md")
    return source.with_suffix(".import.md") if target == source else target


def import_issue_text(
    source: Path,
    out: Path | None = None,
    *,
    number: int | None = None,
    hints: list[str] | None = None,
    rules: Sequence[tuple[str, str, str]] = (),
) -> tuple[dict[str, Any], list[tuple[int, str, str]]]:
    """Import the file ``source`` and write the issue Markdown (temp file, then rename).

    Returns ``(report, outline)``.  Never writes over ``source``; hints kept in
    an earlier output's ``import_hints`` are applied again, with ``hints``
    (``"LINE=CLASS"``) on top.  Raises :class:`TextImportError` for input that
    cannot be imported, with one bilingual line and no server path.
    """
    from newsletter.content.documents import read_document

    target = out or default_target(source)
    try:
        same = target.resolve() == source.resolve()
    except OSError:
        same = False
    if same:
        raise coded(TextImportError, "import.same_file", name=source.name)
    try:
        data = source.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise coded(TextImportError, "import.unreadable", name=source.name, reason=reason) from None
    text, doc, decode_warnings = read_document(data, name=source.name)
    try:
        chosen = _kept_hints(target) | parse_hints(hints or [])
    except ValueError as exc:
        raise TextImportError(f"提示无效 / {exc}") from None
    try:
        result = import_text(
            text, front_matter={"number": number}, hints=chosen, source=doc, rules=rules
        )
    except TextImportError as exc:
        raise TextImportError(exc.message, line=exc.line, path=source.name) from None
    written_images = _write_images(target.parent / "images", result.images)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(result.markdown, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror or type(exc).__name__
        raise coded(TextImportError, "import.unwritable", name=target.name, reason=reason) from None
    report: dict[str, Any] = {
        "written": str(target),
        "script": result.script,
        "chrome": result.chrome,
        "contents": result.contents,
        "unplaced": result.unplaced,
        "hints": chosen,
        "images": written_images,
        "reasons": result.reasons,
        "warnings": decode_warnings + result.warnings,
    }
    return report, result.outline


def _write_images(folder: Path, images: list[Image]) -> list[str]:
    """Write extracted images (content-named, so an existing file is never changed)."""
    names: list[str] = []
    for image in images:
        path = folder / image.name
        if image.name in names:
            continue
        try:
            folder.mkdir(exist_ok=True)
            if not path.exists():
                tmp = folder / f".{image.name}.tmp"
                tmp.write_bytes(image.data)
                tmp.replace(path)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise coded(
                TextImportError, "import.unwritable", name=f"images/{image.name}", reason=reason
            ) from None
        names.append(image.name)
    return names
