"""Plain text copied from a web page or a Word file → the issue Markdown dialect.

This is a line classifier, not a Markdown parser: each line of the input is
recognised by regular expressions as page chrome, a header field, a section
heading (``一、政策法规``), an item heading (``1、标题`` / ``1.标题``), a meta
line (``发布机构：…`` with ``:`` or ``：``), a bare URL, an analysis marker
(``丨政策简析丨`` / ``【政策简析】``), a summary line (``摘要：…``), a
tab-separated table row, or prose.

Guarantees:

* The returned ``markdown`` is accepted by
  :func:`newsletter.content.parser.parse_issue` as it is, whatever the input:
  prose is escaped so that it can never turn into Markdown structure.
* No input line disappears silently: every line is either placed in the
  output, reported in ``chrome`` (dropped page furniture such as breadcrumbs,
  read counters, share/print links, a hand-written table of contents) or
  reported in ``unplaced`` (content with no valid place, e.g. a meta line
  before the first item); both lists carry 1-based input line numbers.
* Numbered lines are taken as headings only when their number continues the
  current sequence (or jumps forward with a short title, with a warning), so
  numbered lists inside an item's text stay in the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from newsletter.content.parser import DEFAULT_ANALYSIS_LABEL, META_ROLES, parse_numeral

__all__ = ["TextImportResult", "import_text"]


@dataclass(slots=True)
class TextImportResult:
    markdown: str
    unplaced: list[tuple[int, str]] = field(default_factory=list)
    chrome: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- patterns

_SEP = r"[>＞›»→]"
_CHROME = [
    re.compile(p)
    for p in (
        rf"^(首页|主页|网站首页|当前位置|您的位置|你的位置|您现在的位置|所在位置)\s*[:：]?.*({_SEP}|/).*$",
        rf"^[^\s>＞›»→]{{1,12}}(\s*{_SEP}\s*[^\s>＞›»→]{{1,16}}){{2,}}$",
        r"^分享(到|至)?\s*[:：]?.*$",
        r"^【?\[?(打印本页|打印|打印文章|关闭|关闭窗口|关闭本页|收藏|加入收藏|纠错|我要纠错|"
        r"返回顶部|回到顶部|返回|返回列表|返回首页|保存本页|下载本页)\]?】?$",
        r"^([【\[]\s*(打印本页|打印|关闭窗口|关闭本页|关闭|收藏|加入收藏|纠错|我要纠错|返回顶部)"
        r"\s*[】\]]\s*)+$",
        r"^[【\[]?\s*字\s*[体号]\s*[:：]?\s*[【\[]?\s*大\s*[】\]]?\s*[【\[]?\s*中\s*[】\]]?"
        r"\s*[【\[]?\s*小\s*[】\]]?\s*[】\]]?$",
        r"^(上一篇|下一篇|上一条|下一条|上一页|下一页)\s*[:：]?.*$",
        r"^(责任编辑|校对|审核|审校|编审)\s*[:：].{0,30}$",
        r"^(扫一扫|扫码|微信扫一扫|手机扫一扫|手机看|用手机看|扫描二维码).*$",
        r"^(微信|微博|QQ空间|QQ|豆瓣|朋友圈|新浪微博|腾讯微博|复制链接)"
        r"([\s/|、,，]+(微信|微博|QQ空间|QQ|豆瓣|朋友圈|新浪微博|腾讯微博|复制链接))*$",
        r"^(版权所有|Copyright|©|主办单位|承办单位|技术支持|网站标识码|网站地图|联系我们).*$",
        r"^.*ICP\s*备\s*\d+.*$",
        r"^(相关链接|相关阅读|相关文章|推荐阅读|热点推荐|相关新闻|延伸阅读)\s*[:：]?$",
        r"^(登录|注册|登录\s*[|/]\s*注册)$",
        r"^(点赞|在看|赞|喜欢|评论|留言)\s*\d*$",
        r"^.{0,40}(阅读|浏览|阅读量|浏览量|浏览次数|阅读次数|访问量|点击量|点击数|点击)"
        r"\s*[:：]?\s*\d+\s*次?.{0,20}$",
        r"^\[?\s*(视力保护色|默认|护眼)\s*\]?.*[:：]?$",
    )
]
_TOC_RE = re.compile(r"^(本期)?目\s*录$")
_SECTION_RE = re.compile(r"^([一二三四五六七八九十]{1,3})\s*[、.．]\s*(\S.*)$")
_ITEM_RE = re.compile(r"^(\d{1,3})\s*(?:、|[.．](?!\d))\s*(\S.*)$")
_MARKER_RE = re.compile(r"^([丨｜|【\[])\s*([^丨｜|【】\[\]]{2,12}?)\s*([丨｜|】\]])$")
_MARKER_WORDS = ("简析", "点评", "解读", "分析", "评论", "观察", "编者按", "评析", "短评")
_KV_RE = re.compile(r"^([\u4e00-\u9fff][\u4e00-\u9fff\s]{0,9}?)\s*[:：]\s*(.*)$")
_URL_LINE_RE = re.compile(r"^<?(https?://[^\s<>]+)>?$")
_SAFE_URL_RE = re.compile(r"^https?://[A-Za-z0-9\-.~:/?#@!$&'()+,;=%]+$")
_URL_RE = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_SENTENCE_END = ("。", "；", "，", "！", "？", ".", ";", ",")
_SPECIALS = re.compile(r"([\\`*_\[\]<>#|~&!])")

_HEADER_KEYS = {
    "标题": "title",
    "题目": "title",
    "刊名": "publication",
    "出品": "publication",
    "期数": "number",
    "期号": "number",
    "期次": "number",
    "时间": "period",
    "周期": "period",
    "本期时间": "period",
    "统计时间": "period",
    "日期": "date",
    "出刊日期": "date",
    "发布日期": "date",
    "来源": "source",
    "编制": "source",
    "编制单位": "source",
    "主编单位": "source",
    "作者": "author",
    "编辑": "author",
    "撰稿": "author",
    "执笔": "author",
    "导语": "preheader",
    "摘要": "preheader",
}
_META_KEYS = set(META_ROLES) | {"来源", "发布时间", "索引号", "主题分类", "施行日期", "实施日期"}
_SUMMARY_KEYS = ("一句话摘要", "摘要", "本条摘要", "要点")


# --------------------------------------------------------------------------- escaping


def _escape(text: str) -> str:
    """Make prose inert Markdown: escape specials and anything that could start a block."""
    out = _SPECIALS.sub(r"\\\1", text)
    out = re.sub(r"^(\d+)([.)])", r"\1\\\2", out)
    out = re.sub(r"^([-+=:])", r"\\\1", out)
    return out


def _prose(text: str) -> str:
    """Escape prose and turn bare http(s) URLs into autolinks."""
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
    meta: list[tuple[str, str]] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    analysis_label: str | None = None
    analysis: list[str] = field(default_factory=list)
    summary: str | None = None

    def has_role(self, role: str) -> bool:
        return any(META_ROLES.get(k) == role for k, _ in self.meta)


@dataclass
class _Section:
    numeral: str
    number: int
    title: str
    intro: list[str] = field(default_factory=list)
    items: list[_Item] = field(default_factory=list)


def _clean(raw: str) -> str:
    line = raw.replace("\u3000", " ").replace("\xa0", " ")
    line = re.sub(r"[\u200b\u200c\u200d\ufeff]", "", line)
    return line.strip()


def _is_chrome(line: str) -> bool:
    return any(p.match(line) for p in _CHROME)


def _short_title(text: str, limit: int) -> bool:
    return len(text) <= limit and not text.endswith(_SENTENCE_END)


def _number_from(value: str) -> int | None:
    m = re.search(r"(?<!总)第\s*(\d+)\s*期", value) or re.search(r"(\d+)", value)
    if m:
        return int(m.group(1))
    m2 = re.search(r"第\s*([一二三四五六七八九十]{1,3})\s*期", value)
    return parse_numeral(m2.group(1)) if m2 else None


@dataclass
class _Importer:
    header: dict[str, Any] = field(default_factory=dict)
    header_prose: list[tuple[int, str]] = field(default_factory=list)
    intro: list[str] = field(default_factory=list)
    sections: list[_Section] = field(default_factory=list)
    result: TextImportResult = field(default_factory=lambda: TextImportResult(""))
    toc_first: str | None = None
    in_toc: bool = False
    table_rows: list[list[str]] = field(default_factory=list)
    list_next: int = 0  # next number of a numbered list inside an item's text

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
            return it.analysis if it.analysis_label is not None else it.body
        s = self.section
        return s.intro if s is not None else self.intro

    def unplaced(self, n: int, line: str, why: str) -> None:
        self.result.unplaced.append((n, line))
        self.result.warnings.append(f"line {n}: {why}; not placed: {line}")

    def flush_table(self) -> None:
        if self.table_rows:
            self.target().append(_table(self.table_rows))
            self.table_rows = []

    # -- classification ----------------------------------------------------------
    def feed(self, n: int, raw: str) -> None:
        line = _clean(raw)
        if not line:
            self.flush_table()
            return
        if _is_chrome(line):
            self.result.chrome.append((n, line))
            return
        if self.toc(n, line):
            return
        cells = raw.strip().split("\t")
        if len(cells) >= 2 and self.sections:
            self.table_rows.append(cells)
            return
        self.flush_table()
        for handler in (
            self.section_heading,
            self.item_heading,
            self.marker,
            self.key_value,
            self.url_line,
        ):
            if handler(n, line):
                return
        self.prose(n, line)

    def toc(self, n: int, line: str) -> bool:
        if _TOC_RE.match(line):
            self.in_toc = True
            self.result.chrome.append((n, line))
            return True
        if not self.in_toc:
            return False
        if (_SECTION_RE.match(line) or _ITEM_RE.match(line)) and line != self.toc_first:
            self.toc_first = self.toc_first or line
            self.result.chrome.append((n, line))
            return True
        self.in_toc = False
        return False

    def section_heading(self, n: int, line: str) -> bool:
        m = _SECTION_RE.match(line)
        if m is None:
            return False
        number = parse_numeral(m.group(1))
        expected = len(self.sections) + 1
        title = m.group(2).strip()
        if number is None or not _short_title(title, 30) or number < expected:
            return False
        if number > expected:
            if not _short_title(title, 16):
                return False
            self.result.warnings.append(
                f"line {n}: section {m.group(1)}、 follows section {expected - 1}; numbering skips"
            )
        self.sections.append(_Section(m.group(1), number, title))
        self.list_next = 0
        return True

    def item_heading(self, n: int, line: str) -> bool:
        m = _ITEM_RE.match(line)
        if m is None:
            return False
        number, title = int(m.group(1)), m.group(2).strip()
        s = self.section
        if s is None:
            if number == 1 and _short_title(title, 80):
                self.unplaced(n, line, "item heading before the first section heading")
                return True
            return False
        if not self.is_item_heading(n, s, number, title):
            # a numbered line inside an item's text: keep counting that list
            self.list_next = number + 1 if number in (1, self.list_next) else self.list_next
            return False
        s.items.append(_Item(number, title))
        self.list_next = 0
        return True

    def is_item_heading(self, n: int, s: _Section, number: int, title: str) -> bool:
        expected = len(s.items) + 1
        if number == expected:
            # "2." right after an in-text "1." is a list unless it looks like a title
            return number != self.list_next or _short_title(title, 40)
        if number < expected or number == self.list_next or not _short_title(title, 60):
            return False
        self.result.warnings.append(
            f"line {n}: item {number} follows item {expected - 1}; numbering skips"
        )
        return True

    def marker(self, n: int, line: str) -> bool:
        m = _MARKER_RE.match(line)
        if m is None:
            return False
        label = m.group(2).strip()
        opener = m.group(1)
        if opener in "【[" and not any(w in label for w in _MARKER_WORDS):
            return False
        it = self.item
        if it is None:
            self.unplaced(n, line, "analysis marker outside an item")
        elif it.analysis_label is not None:
            self.result.warnings.append(f"line {n}: second analysis marker in the same item")
        else:
            it.analysis_label = label or DEFAULT_ANALYSIS_LABEL
        return True

    def key_value(self, n: int, line: str) -> bool:
        m = _KV_RE.match(line)
        if m is None:
            return False
        key, value = re.sub(r"\s", "", m.group(1)), m.group(2).strip()
        if not self.sections and key in _HEADER_KEYS:
            self.header_field(key, value)
            return True
        it = self.item
        if key in _SUMMARY_KEYS and it is not None:
            it.summary = value
            return True
        if key not in _META_KEYS:
            return False
        if it is None:
            self.unplaced(n, line, f"meta line '{key}' before the first item")
        else:
            it.meta.append((key, value))
        return True

    def header_field(self, key: str, value: str) -> None:
        name = _HEADER_KEYS[key]
        if name == "number":
            number = _number_from(value)
            if number is None:
                self.result.warnings.append(f"cannot read an issue number from {key}：{value}")
                return
            self.header["number"] = number
        else:
            self.header.setdefault(name, value)

    def url_line(self, n: int, line: str) -> bool:
        m = _URL_LINE_RE.match(line)
        if m is None:
            return False
        url = m.group(1)
        it = self.item
        if it is not None and it.analysis_label is None and not it.has_role("url"):
            policy = it.has_role("issuer") or it.has_role("doc_number")
            it.meta.append(("原文链接" if policy else "链接", url))
        else:
            self.target().append(f"<{url}>")
        return True

    def prose(self, n: int, line: str) -> None:
        if not self.sections:
            self.header_prose.append((n, line))
        else:
            self.target().append(_prose(line))

    # -- output ----------------------------------------------------------------
    def finish_header(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        fm = dict(self.header)
        prose = list(self.header_prose)
        if "title" not in fm and prose and _short_title(prose[0][1], 40):
            fm["title"] = prose.pop(0)[1]
        elif prose and prose[0][1].strip("《》") == str(fm.get("title", "")).strip("《》"):
            prose.pop(0)
        self.intro = [_prose(line) for _, line in prose] + self.intro
        fm.update(overrides)
        if not fm.get("title"):
            fm["title"] = "未命名"
            self.result.warnings.append("no title found (标题：…); title set to 未命名")
        if "number" not in fm:
            fm["number"] = 0
            self.result.warnings.append("no issue number found (期数：第N期); number set to 0")
        order = ["title", "number", "period", "date", "source", "author", "publication"]
        order += ["preheader"]
        return {k: fm[k] for k in order if k in fm} | {
            k: v for k, v in fm.items() if k not in order
        }

    def render(self, overrides: Mapping[str, Any]) -> str:
        self.flush_table()
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
        out += ["::: meta", *(f"{k}：{_meta_value(v)}" for k, v in it.meta), ":::", ""]
    out += [p + "\n" for p in it.body]
    if it.analysis_label is not None:
        out += [f"::: analysis {it.analysis_label}", ""]
        out += [p + "\n" for p in it.analysis]
        out += [":::", ""]
    if it.summary:
        out += ["::: summary", _escape(it.summary), ":::", ""]
    return out


def import_text(text: str, *, front_matter: Mapping[str, Any] | None = None) -> TextImportResult:
    """Convert a plain-text brief into issue Markdown (see the module docstring).

    ``front_matter`` values override or complete what was read from the
    header lines (e.g. ``{"number": 48}`` when the text has no 期数 line).
    """
    imp = _Importer()
    # split on newlines only, so line numbers match what an editor shows
    for n, raw in enumerate(re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff")), 1):
        imp.feed(n, raw)
    imp.result.markdown = imp.render(front_matter or {})
    return imp.result
