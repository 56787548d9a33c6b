"""The one document model every renderer takes as input.

An issue is parsed once (see :mod:`newsletter.content.parser`) into an
:class:`Issue`: header fields from the front matter, then sections, each
holding numbered items.  Each item carries an optional metadata block
(issuing body, document number, date, official link, any other key/value),
body blocks and an optional analysis block.  Renderers for email, text,
WeChat and the web archive all walk this structure; none of them re-parses
HTML produced by another renderer.

Body content is kept as a small list of typed blocks whose inline text is
already-safe HTML (produced by markdown-it from the source), plus a plain-text
twin used by the text/plain part and by size/lint checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Block",
    "Image",
    "Issue",
    "Item",
    "Link",
    "MetaField",
    "Section",
]

BlockKind = Literal["paragraph", "quote", "list", "table", "image", "heading", "rule", "code"]


@dataclass(slots=True)
class Link:
    """An external link found in the issue, numbered in document order (1-based)."""

    position: int
    url: str
    text: str
    anchor: str = ""  # anchor of the section/item the link appears in ("" for the intro)
    line: int = 0  # 1-based source line


@dataclass(slots=True)
class Image:
    """An image referenced by the issue. ``sha256`` is filled when the file is readable."""

    src: str
    alt: str
    sha256: str | None = None
    line: int = 0  # 1-based source line


@dataclass(slots=True)
class Block:
    """One body block.

    ``html`` is sanitised inline HTML for the block's content (for a list, the
    ``<li>`` elements; for a table, the inner rows).  ``text`` is the plain
    text twin.  ``rows`` is set for tables (list of cells, first row header),
    ``items`` for lists (each entry plain text), ``image`` for images.
    ``links`` lists the :attr:`Link.position` of every external link in the
    block, in order; the same numbers appear as ``data-link="n"`` on the
    ``<a>`` elements of ``html`` so a renderer can swap in tracked URLs
    without parsing anything.
    """

    kind: BlockKind
    html: str
    text: str
    ordered: bool = False
    rows: list[list[str]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    items_html: list[str] = field(default_factory=list)
    image: Image | None = None
    line: int = 0
    links: list[int] = field(default_factory=list)


@dataclass(slots=True)
class MetaField:
    """One key/value line of an item's metadata block.

    ``key`` is as written (e.g. ``发布机构``); ``role`` is the canonical role
    when the key is recognised: ``issuer``, ``doc_number``, ``date``, ``url``
    or ``None`` for any other key.  ``link`` is the :attr:`Link.position` of
    the URL when the value is a collected external link.
    """

    key: str
    value: str
    role: str | None = None
    link: int | None = None
    line: int = 0


@dataclass(slots=True)
class Item:
    number: int
    title: str
    anchor: str
    meta: list[MetaField] = field(default_factory=list)
    body: list[Block] = field(default_factory=list)
    analysis_label: str | None = None
    analysis: list[Block] = field(default_factory=list)
    summary: str | None = None
    line: int = 0

    def meta_value(self, role: str) -> str | None:
        for m in self.meta:
            if m.role == role:
                return m.value
        return None


@dataclass(slots=True)
class Section:
    number: int
    numeral: str  # as written, e.g. "一"
    title: str
    anchor: str
    intro: list[Block] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    line: int = 0


@dataclass(slots=True)
class Issue:
    title: str
    number: int
    period: str
    source: str
    author: str
    publication: str
    preheader: str = ""
    cover: str | None = None
    date: str | None = None
    intro: list[Block] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    source_hash: str = ""
    variant: str = "zh-Hans"
    source_script: str = "Hans"  # script the source is written in: "Hans" or "Hant"
    hant_table: str = ""  # zh_hant front matter: s2t, s2hk or s2tw ("" = the publication's)

    def iter_items(self) -> list[tuple[Section, Item]]:
        return [(s, i) for s in self.sections for i in s.items]

    def char_count(self) -> int:
        """Characters of visible text (used by budgets and reports)."""
        n = len(self.title) + len(self.period) + len(self.source) + len(self.author)
        for b in self.intro:
            n += len(b.text)
        for s in self.sections:
            n += len(s.title) + sum(len(b.text) for b in s.intro)
            for it in s.items:
                n += len(it.title)
                n += sum(len(m.key) + len(m.value) for m in it.meta)
                n += sum(len(b.text) for b in it.body)
                n += sum(len(b.text) for b in it.analysis)
        return n
