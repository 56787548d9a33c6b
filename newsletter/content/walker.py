"""The body of an issue source: markdown-it's token stream walked into sections, items
and blocks (the front matter is read by :mod:`.frontmatter`, the entry points are in
:mod:`.parser`, which lists what the parse guarantees)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from mdit_py_plugins.container import container_plugin
from mdit_py_plugins.front_matter import front_matter_plugin

from newsletter.content.model import Block, Image, Issue, Item, Link, MetaField, Section
from newsletter.content.numerals import NUMERAL_CHARS, parse_numeral
from newsletter.core.errors import IssueFormatError
from newsletter.core.safety.safepath import contained_file
from newsletter.core.safety.urlpolicy import safe_url

__all__ = ["DEFAULT_ANALYSIS_LABEL", "META_ROLES", "Walker", "markdown"]

DEFAULT_ANALYSIS_LABEL = "政策简析"
KNOWN_BLOCKS = ("meta", "analysis", "summary")

#: Recognised meta keys (simplified, plus traditional spellings) → canonical role.
META_ROLES: dict[str, str] = {
    "发布机构": "issuer",
    "发文机关": "issuer",
    "发布单位": "issuer",
    "發布機構": "issuer",
    "發文機關": "issuer",
    "發布單位": "issuer",
    "文号": "doc_number",
    "发文字号": "doc_number",
    "文號": "doc_number",
    "發文字號": "doc_number",
    "发布日期": "date",
    "成文日期": "date",
    "日期": "date",
    "發布日期": "date",
    "原文链接": "url",
    "链接": "url",
    "网址": "url",
    "原文鏈接": "url",
    "原文連結": "url",
    "鏈接": "url",
    "連結": "url",
    "網址": "url",
}

_SECTION_RE = re.compile(rf"^([{NUMERAL_CHARS}]+)\s*[、.．]\s*(.*)$", re.S)
_ITEM_RE = re.compile(r"^(\d{1,4})\s*[.．、]\s*(.*)$", re.S)
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_NOT_COLLECTED = ("mailto:", "tel:")


def _pattern_role(key: str) -> str | None:
    """A key of the import pattern table (either script, e.g. 官網鍊接) → its role."""
    from newsletter.content.patterns import meta_role

    role = meta_role(key)
    return role if role in _CANONICAL_ROLES else None


_CANONICAL_ROLES = frozenset(META_ROLES.values())

# --------------------------------------------------------------------------- markdown-it


def _validate_unknown(params: str, *args: Any) -> bool:
    return params.strip().split(" ", 1)[0] not in KNOWN_BLOCKS


@lru_cache(maxsize=1)
def markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    md.use(front_matter_plugin)
    for name in KNOWN_BLOCKS:
        md.use(container_plugin, name)
    md.use(container_plugin, "unknown", validate=_validate_unknown)
    return md


def _close_index(tokens: Sequence[Token], i: int) -> int:
    """Index of the token closing ``tokens[i]`` (``i`` itself for non-opening tokens)."""
    tok = tokens[i]
    if tok.nesting != 1:
        return i
    for j in range(i + 1, len(tokens)):
        if tokens[j].level == tok.level and tokens[j].nesting == -1:
            return j
    return len(tokens) - 1


def _line(tok: Token, default: int = 0) -> int:
    return tok.map[0] + 1 if tok.map else default


def _plain(children: Sequence[Token]) -> str:
    out: list[str] = []
    for c in children:
        if c.type in ("text", "text_special", "code_inline"):
            out.append(c.content)
        elif c.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif c.type == "image":
            out.append(c.content)
    return "".join(out)


_CJK_RE = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f“”‘’—…·]")


def _join_cjk_breaks(children: Sequence[Token]) -> None:
    """Drop a soft line break between Chinese characters (it would render as a space)."""
    for k, c in enumerate(children):
        if c.type != "softbreak" or k == 0 or k + 1 >= len(children):
            continue
        before, after = children[k - 1].content, children[k + 1].content
        if before and after and _CJK_RE.match(before[-1]) and _CJK_RE.match(after[0]):
            c.type = "text"
            c.content = ""


def _closes(tok: Token) -> bool:
    return tok.type == "link_close"


def _is_collected(href: str) -> bool:
    return bool(href) and not href.startswith("#") and not href.lower().startswith(_NOT_COLLECTED)


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


# --------------------------------------------------------------------------- the walker


@dataclass
class Walker:
    issue: Issue
    path: str | None
    base_dir: Path | None
    section: Section | None = None
    item: Item | None = None
    _hashes: dict[str, str | None] = field(default_factory=dict)
    #: A sealed version's images (path as written → SHA-256): no file is read.
    sealed: Mapping[str, str] | None = None

    # -- helpers ---------------------------------------------------------
    def error(self, message: str, line: int | None) -> IssueFormatError:
        return IssueFormatError(message, line=line, path=self.path)

    @property
    def anchor(self) -> str:
        if self.item is not None:
            return self.item.anchor
        return self.section.anchor if self.section is not None else ""

    def add_link(self, url: str, text: str, line: int) -> int:
        pos = len(self.issue.links) + 1
        self.issue.links.append(Link(pos, url, text, anchor=self.anchor, line=line))
        return pos

    def add_image(self, src: str, alt: str, line: int) -> Image:
        img = Image(src=src, alt=alt, sha256=self._image_hash(src), line=line)
        self.issue.images.append(img)
        return img

    def _image_hash(self, src: str) -> str | None:
        if _SCHEME_RE.match(src) or src.startswith("//"):
            return None
        if self.sealed is not None:
            return self.sealed.get(src)
        if self.base_dir is None:
            return None
        if src not in self._hashes:
            # Only a file inside the issue's folder or the media folder is ever read.
            found = contained_file(self.base_dir, src)
            self._hashes[src] = _sha256_file(found) if found is not None else None
        return self._hashes[src]

    # -- inline ------------------------------------------------------------
    def inline(self, tok: Token, links: list[int]) -> tuple[str, str]:
        """Render one inline token → (html, text), collecting links and images."""
        children = tok.children or []
        line = _line(tok)
        for k, c in enumerate(children):
            if c.type == "link_open":
                href = str(c.attrGet("href") or "")
                if _is_collected(href):
                    end = next(
                        (j for j in range(k + 1, len(children)) if _closes(children[j])),
                        len(children),
                    )
                    text = _plain(children[k + 1 : end]).strip()
                    pos = self.add_link(href, text, line)
                    c.attrSet("data-link", str(pos))
                    links.append(pos)
            elif c.type == "image":
                self.add_image(str(c.attrGet("src") or ""), c.content.strip(), line)
            elif c.type in ("softbreak", "hardbreak"):
                line += 1
        _join_cjk_breaks(children)
        md = markdown()
        html = cast(RendererHTML, md.renderer).renderInline(children, md.options, {})
        return html, _plain(children)

    # -- blocks --------------------------------------------------------------
    def block(self, tokens: Sequence[Token], i: int, end: int) -> Block | None:
        tok = tokens[i]
        for t in tokens[i : end + 1]:
            if t.type.startswith("container_"):
                raise self.error("'::: ' blocks cannot be nested inside other blocks", _line(t))
        line = _line(tok)
        kind = tok.type
        if kind == "paragraph_open":
            return self.paragraph(tokens[i + 1], line)
        if kind == "heading_open":
            links: list[int] = []
            html, text = self._inlines(tokens[i:end], links)
            return Block("heading", html, text.strip(), line=line, links=links)
        if kind == "blockquote_open":
            return self.quote(tokens[i:end], line)
        if kind in ("bullet_list_open", "ordered_list_open"):
            return self.list_block(tokens, i, end)
        if kind == "table_open":
            return self.table(tokens[i:end], line)
        if kind == "hr":
            return Block("rule", "", "", line=line)
        if kind in ("fence", "code_block"):
            return Block("code", escapeHtml(tok.content), tok.content, line=line)
        return None

    def _inlines(self, tokens: Sequence[Token], links: list[int]) -> tuple[str, str]:
        parts = [self.inline(t, links) for t in tokens if t.type == "inline"]
        return "<br>\n".join(h for h, _ in parts), "\n".join(t for _, t in parts)

    def paragraph(self, tok: Token, line: int) -> Block:
        children = tok.children or []
        visible = [c for c in children if not (c.type == "text" and not c.content.strip())]
        links: list[int] = []
        html, text = self.inline(tok, links)
        if len(visible) == 1 and visible[0].type == "image":
            image = self.issue.images[-1]
            return Block("image", html, image.alt, image=image, line=line, links=links)
        return Block("paragraph", html, text, line=line, links=links)

    def quote(self, tokens: Sequence[Token], line: int) -> Block:
        links: list[int] = []
        html, text = self._inlines(tokens, links)
        return Block("quote", html, text, line=line, links=links)

    def list_block(self, tokens: Sequence[Token], i: int, end: int) -> Block:
        tok = tokens[i]
        links: list[int] = []
        items_html: list[str] = []
        items: list[str] = []
        j = i + 1
        while j < end:
            if tokens[j].type == "list_item_open" and tokens[j].level == tok.level + 1:
                close = _close_index(tokens, j)
                h, t = self._inlines(tokens[j:close], links)
                items_html.append(h)
                items.append(t)
                j = close
            j += 1
        html = "".join(f"<li>{h}</li>" for h in items_html)
        return Block(
            "list",
            html,
            "\n".join(items),
            ordered=tok.type == "ordered_list_open",
            items=items,
            items_html=items_html,
            line=_line(tok),
            links=links,
        )

    def table(self, tokens: Sequence[Token], line: int) -> Block:
        links: list[int] = []
        rows: list[list[str]] = []
        html_rows: list[str] = []
        cells_html: list[str] = []
        cell_tag = "th"
        for t in tokens:
            if t.type in ("th_open", "td_open"):
                cell_tag = t.tag
            elif t.type == "inline":
                h, txt = self.inline(t, links)
                cells_html.append(f"<{cell_tag}>{h}</{cell_tag}>")
                rows[-1].append(txt.strip())
            elif t.type == "tr_open":
                rows.append([])
                cells_html = []
            elif t.type == "tr_close":
                html_rows.append("<tr>" + "".join(cells_html) + "</tr>")
        text = "\n".join(" | ".join(r) for r in rows)
        return Block("table", "\n".join(html_rows), text, rows=rows, line=line, links=links)

    def append(self, block: Block) -> None:
        if self.item is not None:
            self.item.body.append(block)
        elif self.section is not None:
            self.section.intro.append(block)
        else:
            self.issue.intro.append(block)

    # -- headings ------------------------------------------------------------
    def heading(self, tokens: Sequence[Token], i: int) -> None:
        tok, inline = tokens[i], tokens[i + 1]
        line = _line(tok)
        text = _plain(inline.children or []).strip()
        if tok.tag == "h2":
            self.start_section(text, line)
        else:
            self.start_item(text, line)

    def start_section(self, text: str, line: int) -> None:
        m = _SECTION_RE.match(text)
        number = parse_numeral(m.group(1)) if m else None
        if m is None or number is None:
            raise self.error(
                f"section heading must start with a Chinese numeral and '、' "
                f"(like '## 一、政策法规'), got {text!r}",
                line,
            )
        title = m.group(2).strip()
        if not title:
            raise self.error("section heading without a title", line)
        anchor = f"s{len(self.issue.sections) + 1}"
        self.section = Section(number, m.group(1), title, anchor, line=line)
        self.issue.sections.append(self.section)
        self.item = None

    def start_item(self, text: str, line: int) -> None:
        if self.section is None:
            raise self.error("item heading ('### ') before the first section ('## ')", line)
        m = _ITEM_RE.match(text)
        if m is None:
            raise self.error(
                f"item heading must start with a number and '.' or '、' "
                f"(like '### 1. 标题'), got {text!r}",
                line,
            )
        title = m.group(2).strip()
        if not title:
            raise self.error("item heading without a title", line)
        anchor = f"{self.section.anchor}-i{len(self.section.items) + 1}"
        self.item = Item(int(m.group(1)), title, anchor, line=line)
        self.section.items.append(self.item)

    # -- ::: containers ------------------------------------------------------
    def container(self, tokens: Sequence[Token], i: int, end: int) -> None:
        tok = tokens[i]
        line = _line(tok)
        params = tok.info.strip()
        kind, _, rest = params.partition(" ")
        if kind not in KNOWN_BLOCKS:
            what = f"unknown block type '::: {kind}'" if kind else "'::: ' without a block type"
            raise self.error(f"{what}; expected one of: meta, analysis LABEL, summary", line)
        if self.item is None:
            raise self.error(f"'::: {kind}' block outside an item", line)
        inner = tokens[i + 1 : end]
        if kind == "meta":
            self.meta(self.item, inner, line)
        elif kind == "analysis":
            self.analysis(self.item, inner, rest.strip(), line)
        else:
            self.summary(self.item, inner, line)

    def meta(self, item: Item, inner: Sequence[Token], line: int) -> None:
        if item.meta:
            raise self.error("second '::: meta' block in the same item", line)
        for tok in inner:
            if tok.type.startswith("container_"):
                raise self.error("'::: ' blocks cannot be nested", _line(tok, line))
            if tok.type == "inline":
                self.meta_lines(item, tok)

    def meta_lines(self, item: Item, tok: Token) -> None:
        line = _line(tok)
        current: list[Token] = []
        for c in [*(tok.children or []), Token("softbreak", "", 0)]:
            if c.type in ("softbreak", "hardbreak"):
                self.meta_field(item, current, line)
                current = []
                line += 1
            else:
                current.append(c)

    def meta_field(self, item: Item, children: list[Token], line: int) -> None:
        text = _plain(children).strip()
        if not text:
            return
        cut = min((p for p in (text.find(":"), text.find("：")) if p >= 0), default=-1)
        if cut <= 0:
            raise self.error(f"meta line without a colon (expected '键：值'): {text!r}", line)
        key, value = text[:cut].strip(), text[cut + 1 :].strip()
        role = META_ROLES.get(key) or _pattern_role(key)
        hrefs = [str(c.attrGet("href") or "") for c in children if c.type == "link_open"]
        url = next((h for h in hrefs if _is_collected(h) and safe_url(h) is not None), None)
        if role == "url":
            value = url or value.strip("<>")
            url = value if safe_url(value) is not None else None
        field_ = MetaField(key, value, role, line=line)
        if url is not None:
            field_.link = self.add_link(url, item.title, line)
        item.meta.append(field_)

    def sub_blocks(self, inner: Sequence[Token]) -> list[Block]:
        blocks: list[Block] = []
        j = 0
        while j < len(inner):
            end = _close_index(inner, j)
            b = self.block(inner, j, end)
            if b is not None:
                blocks.append(b)
            j = end + 1
        return blocks

    def analysis(self, item: Item, inner: Sequence[Token], label: str, line: int) -> None:
        if item.analysis_label is not None:
            raise self.error("second '::: analysis' block in the same item", line)
        item.analysis_label = label or DEFAULT_ANALYSIS_LABEL
        item.analysis = self.sub_blocks(inner)

    def summary(self, item: Item, inner: Sequence[Token], line: int) -> None:
        if item.summary is not None:
            raise self.error("second '::: summary' block in the same item", line)
        item.summary = "\n".join(b.text for b in self.sub_blocks(inner)).strip()

    # -- top level -----------------------------------------------------------
    def walk(self, tokens: Sequence[Token]) -> None:
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            end = _close_index(tokens, i)
            if tok.type == "front_matter":
                pass
            elif tok.type == "heading_open" and tok.tag in ("h2", "h3"):
                self.heading(tokens, i)
            elif tok.type.startswith("container_"):
                self.container(tokens, i, end)
            else:
                block = self.block(tokens, i, end)
                if block is not None:
                    self.append(block)
            i = end + 1
