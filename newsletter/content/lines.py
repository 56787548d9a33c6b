"""The pieces of a plain-text import: the line classes, the shapes being built (item,
section, line), and how prose, metadata and tables are written out as issue Markdown.

Prose is escaped so that it can never turn into Markdown structure; URLs stay readable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from newsletter.content.markers import DocFamily
from newsletter.content.source import Image
from newsletter.core.errors import IssueFormatError

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
_KV_BRACKET_RE = re.compile(
    r"^[【\[](?P<key>[\u4e00-\u9fff](?:\s*[\u4e00-\u9fff]){1,7})[】\]]\s*(?P<value>\S.*)$"
)
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
    "divider": "分隔线",
    "disclaimer": "免责、风险或转载声明",
    "unsubscribe": "退订提示（发送时另附一键退订）",
    "mail-header": "邮件的收件人、发件人行",
    "doc-properties": "文档工具的页面属性（创建人、编辑时间、标签）",
    "mail-view": "邮件的“在浏览器中查看”链接",
    "internal": "内部资料、转发提示",
    "contact": "联系方式",
    "greeting": "邮件称呼",
    "distribution": "报送、印发与来稿信息",
}
_CLASS_REASONS = {
    "contents": "与正文标题重复的目录",
    "title": "首个短行",
    "part": "节之上的一级（其标题并入下面各节的标题）",
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
               "formal": "壹", "roman": "Ⅰ", "ROMAN": "I", "upper": "A", "lower": "a",
               "rlower": "i", "stem": "甲", "decimal": "1.1", "letnum": "A1"}  # fmt: skip
    if shape.startswith("enclosed "):
        return f"{shape[-2]}…{shape[-1]}（整行）"
    if shape.startswith("labelled "):
        return f"{shape[-2]}…{shape[-1]}"
    if shape.startswith("titled "):
        return f"{shape[-2]}标题{shape[-1]}正文"
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
    groups = m.groupdict()
    y1, d1 = m.group("y1"), int(m.group("d1"))
    m1 = int(groups.get("m1") or groups.get("m1c") or 0)
    y2 = m.group("y2") or y1
    m2 = int(groups.get("m2") or groups.get("m2c") or m1)
    d2 = int(m.group("d2"))
    if not m.group("y2") and (m2, d2) < (m1, d1) and y1.isdigit():
        y2 = str(int(y1) + 1)  # 2026.12.28—01.03: the second date is in the new year
    return f"{y1}.{m1:02d}.{d1:02d}–{y2}.{m2:02d}.{d2:02d}"


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
