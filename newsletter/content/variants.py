"""Script variants of an issue: zh-Hans and zh-Hant, from a source in either script.

Guarantees:

* :func:`to_variant` never mutates its argument; it returns a deep copy.
* zh-Hans is the text as written when the source is Simplified.  From a
  Traditional source (:attr:`Issue.source_script` ``"Hant"``) every visible
  string goes through :func:`newsletter.content.script.to_hans` (OpenCC t2s
  plus the ``hans`` fixes of ``newsletter/resources/data/script-overrides.yaml``), so no
  character remains that t2s would still change and 鍊接 becomes 链接.
* zh-Hant is character-level conversion that keeps mainland vocabulary:
  OpenCC ``s2t`` by default, or ``s2hk`` / ``s2tw`` chosen by the issue's
  ``zh_hant`` front matter (the publication's setting), never the Taiwan
  phrase table; then the ``hant`` fixes (關于 → 關於, 甯 → 寧, 産 → 產 …).
* Every visible string is converted: header fields, titles, meta keys and
  values, block text and HTML text, table cells, list items, image alt text,
  link text, analysis labels and summaries.  URLs, anchors, image paths,
  hashes and HTML tags/attributes are never touched: HTML is converted only
  between tags, and URLs inside text are skipped.
* OpenCC converters are created once per process and cached.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from functools import partial

from newsletter.content.model import Block, Issue, Item, MetaField, Section
from newsletter.content.script import HANT_TABLES, _converter, to_hans, to_hant  # noqa: F401

__all__ = ["HANT_TABLES", "VARIANTS", "convert_text", "to_variant"]

VARIANTS = ("zh-Hans", "zh-Hant")

_TAG_RE = re.compile(r"(<[^>]*>)")
_URL_RE = re.compile(r"(https?://[^\s<>\"'，。；）)]+)")


def _skip_urls(s: str, conv: Callable[[str], str]) -> str:
    if not s:
        return s
    parts = _URL_RE.split(s)
    return "".join(p if i % 2 else conv(p) for i, p in enumerate(parts))


def convert_text(s: str, table: str = "s2t") -> str:
    """Simplified (or Traditional) → Traditional by ``table``, leaving URLs alone."""
    return _skip_urls(s, partial(to_hant, table=table))


def convert_hans(s: str) -> str:
    """Either script → Simplified, leaving URLs alone."""
    return _skip_urls(s, to_hans)


def _convert_html(html: str, conv: Callable[[str], str]) -> str:
    """Convert only the text between tags; tags and attributes are copied verbatim."""
    parts = _TAG_RE.split(html)
    return "".join(p if i % 2 else conv(p) for i, p in enumerate(parts))


def _block(b: Block, conv: Callable[[str], str]) -> None:
    b.html = _convert_html(b.html, conv) if b.kind != "code" else b.html
    b.text = conv(b.text) if b.kind != "code" else b.text
    b.rows = [[conv(c) for c in row] for row in b.rows]
    b.items = [conv(x) for x in b.items]
    b.items_html = [_convert_html(x, conv) for x in b.items_html]


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


def to_variant(issue: Issue, variant: str, table: str | None = None) -> Issue:
    """Return a deep copy of ``issue`` in ``variant`` ("zh-Hans" or "zh-Hant").

    ``table`` (``s2t``, ``s2hk`` or ``s2tw``) is the publication's choice for
    the zh-Hant conversion; the issue's own ``zh_hant`` front matter wins
    over it, and ``s2t`` is used when neither says.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if variant == "zh-Hans" and issue.variant == "zh-Hant":
        raise ValueError("cannot convert a zh-Hant issue back to zh-Hans")
    chosen = issue.hant_table or table or "s2t"
    if chosen not in HANT_TABLES:
        raise ValueError(f"unknown zh-Hant table {chosen!r}; expected one of {HANT_TABLES}")
    out = copy.deepcopy(issue)
    if variant == "zh-Hant" and issue.variant != "zh-Hant":
        _convert_issue(out, partial(convert_text, table=chosen))
    elif variant == "zh-Hans" and issue.source_script == "Hant":
        _convert_issue(out, convert_hans)
    out.variant = variant
    return out
