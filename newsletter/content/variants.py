"""Script variants of an issue: zh-Hans (as written) and zh-Hant (converted).

Guarantees:

* :func:`to_variant` never mutates its argument; it returns a deep copy.
* zh-Hant uses OpenCC ``s2twp`` (Taiwan standard with phrase conversion,
  e.g. 软件 → 軟體), with :data:`PHRASE_OVERRIDES` for policy vocabulary where
  the Taiwan IT idiom is wrong in an official-document context (发布 → 發布,
  not 釋出; 文件 stays 文件, not 檔案).
* Every visible string is converted: header fields, titles, meta keys and
  values, block text and HTML text, table cells, list items, image alt text,
  link text, analysis labels and summaries.  URLs, anchors, image paths,
  hashes and HTML tags/attributes are never touched: HTML is converted only
  between tags, and URLs inside text are skipped.
* The OpenCC converter is created once per process and cached.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from functools import lru_cache

import opencc

from newsletter.content.model import Block, Issue, Item, MetaField, Section

__all__ = ["PHRASE_OVERRIDES", "VARIANTS", "convert_text", "to_variant"]

VARIANTS = ("zh-Hans", "zh-Hant")

#: Simplified phrases whose s2twp rendering is wrong in policy texts → wanted output.
PHRASE_OVERRIDES: dict[str, str] = {
    "发布": "發布",
    "文件": "文件",
    "程序": "程序",
    "社区": "社區",
    "窗口": "窗口",
    "优化": "優化",
}

_TAG_RE = re.compile(r"(<[^>]*>)")
_URL_RE = re.compile(r"(https?://[^\s<>\"'，。；）)]+)")
_OVERRIDE_RE = re.compile("|".join(sorted(map(re.escape, PHRASE_OVERRIDES), key=len, reverse=True)))


@lru_cache(maxsize=4)
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def _convert_plain(s: str) -> str:
    conv = _converter("s2twp")
    out: list[str] = []
    pos = 0
    for m in _OVERRIDE_RE.finditer(s):
        out.append(conv.convert(s[pos : m.start()]))
        out.append(PHRASE_OVERRIDES[m.group(0)])
        pos = m.end()
    out.append(conv.convert(s[pos:]))
    return "".join(out)


def convert_text(s: str) -> str:
    """Simplified → Traditional (Taiwan phrases) for plain text, leaving URLs alone."""
    if not s:
        return s
    parts = _URL_RE.split(s)
    return "".join(p if i % 2 else _convert_plain(p) for i, p in enumerate(parts))


def _convert_html(html: str) -> str:
    """Convert only the text between tags; tags and attributes are copied verbatim."""
    parts = _TAG_RE.split(html)
    return "".join(p if i % 2 else convert_text(p) for i, p in enumerate(parts))


def _block(b: Block, conv: Callable[[str], str]) -> None:
    b.html = _convert_html(b.html) if b.kind != "code" else b.html
    b.text = conv(b.text) if b.kind != "code" else b.text
    b.rows = [[conv(c) for c in row] for row in b.rows]
    b.items = [conv(x) for x in b.items]
    b.items_html = [_convert_html(x) for x in b.items_html]


def _meta(m: MetaField, conv: Callable[[str], str]) -> None:
    m.key = conv(m.key)
    if m.role != "url":
        m.value = conv(m.value)


def _item(it: Item, conv: Callable[[str], str]) -> None:
    it.title = conv(it.title)
    for m in it.meta:
        _meta(m, conv)
    for b in [*it.body, *it.analysis]:
        _block(b, conv)
    if it.analysis_label is not None:
        it.analysis_label = conv(it.analysis_label)
    if it.summary is not None:
        it.summary = conv(it.summary)


def _section(s: Section, conv: Callable[[str], str]) -> None:
    s.title = conv(s.title)
    s.numeral = conv(s.numeral)
    for b in s.intro:
        _block(b, conv)
    for it in s.items:
        _item(it, conv)


def _convert_issue(issue: Issue, conv: Callable[[str], str]) -> None:
    for name in ("title", "period", "source", "author", "publication", "preheader"):
        setattr(issue, name, conv(getattr(issue, name)))
    for b in issue.intro:
        _block(b, conv)
    for s in issue.sections:
        _section(s, conv)
    for link in issue.links:
        link.text = conv(link.text)
    # Block.image is usually the same object as an entry of issue.images
    # (deepcopy keeps the sharing); convert every distinct object once.
    blocks = [*issue.intro]
    for s in issue.sections:
        blocks += s.intro
        for it in s.items:
            blocks += it.body + it.analysis
    images = {id(img): img for img in issue.images}
    images.update({id(b.image): b.image for b in blocks if b.image is not None})
    for img in images.values():
        img.alt = conv(img.alt)


def to_variant(issue: Issue, variant: str) -> Issue:
    """Return a deep copy of ``issue`` in ``variant`` ("zh-Hans" or "zh-Hant")."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if variant == "zh-Hans" and issue.variant == "zh-Hant":
        raise ValueError("cannot convert a zh-Hant issue back to zh-Hans")
    out = copy.deepcopy(issue)
    if variant == "zh-Hant" and issue.variant != "zh-Hant":
        _convert_issue(out, convert_text)
    out.variant = variant
    return out
