"""The text/plain part, rendered from the document model (never from HTML).

Guarantees: same content and order as the HTML part of the same mode (full:
header, table of contents, intro, every section and item with metadata, body
and analysis; digest: header, contents, one summary per item with its
阅读全文 URL), links as ``[n]`` footnotes listed after each item with their
(tracked, when click tracking is on) URLs, the unsubscribe / preferences /
archive URLs with slots.  Latin text wraps at spaces near 72 columns; Chinese
is never hard-wrapped (each paragraph is one line), except where a line would
exceed 998 octets, even with slots filled at their maximum length: then it is
cut after a punctuation mark.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from newsletter.content.model import Block, Issue, Item
from newsletter.render.common import (
    LinkIndex,
    href_of,
    item_anchor,
    item_summary,
    link_hint,
    strip_tags,
)
from newsletter.render.context import SLOTS, RenderContext
from newsletter.render.labels import issue_no, labels
from newsletter.render.lines import LIMIT, fold_text_line

__all__ = ["WRAP_COLUMNS", "render_text"]

WRAP_COLUMNS = 72
_A_RE = re.compile(r"<a\b([^>]*)>(.*?)</a\s*>", re.S | re.I)
_BREAK_BEFORE_FORBIDDEN = set("，。、；：！？）》」』】〕…—,.;:!?)]}%")


def _cols(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def _wrap(line: str, width: int = WRAP_COLUMNS, indent: str = "") -> list[str]:
    """Wrap Latin text at spaces; a line with CJK in it is never wrapped.

    Breaking Chinese at a column makes every short line count as a word for
    spam filters (and splits words for readers); long lines are cut only
    where SMTP's 998-octet rule forces it (:func:`~.lines.fold_text_line`,
    at a punctuation mark).
    """
    if not line or any(_cols(ch) == 2 for ch in line):
        return [line]
    out: list[str] = []
    cur: list[str] = []
    col = 0
    last_space = -1
    for ch in line:
        w = _cols(ch)
        if col + w > width and cur:
            if ch in _BREAK_BEFORE_FORBIDDEN:  # keep closing punctuation on its line
                cur.append(ch)
                col += w
                continue
            if ch == " ":
                out.append("".join(cur).rstrip())
                cur, col, last_space = [], 0, -1
                continue
            if last_space > 0:
                head, tail = cur[:last_space], cur[last_space + 1 :]
                out.append("".join(head).rstrip())
                cur = list(tail)
                col = sum(_cols(c) for c in cur)
                last_space = -1
        if ch == " ":
            last_space = len(cur)
        cur.append(ch)
        col += w
    if cur:
        out.append("".join(cur))
    first, *rest = out
    return [first] + [indent + r for r in rest] if indent else out


class _Notes:
    """Footnotes for one item: ``[n]`` markers and the URLs they stand for."""

    def __init__(self, ctx: RenderContext, index: LinkIndex) -> None:
        self.ctx = ctx
        self.index = index
        self.urls: list[str] = []

    def ref(self, url: str, hint: int | None = None) -> int:
        pos = self.index.position(url, hint)
        shown = self.ctx.click_url(pos) if (pos is not None and self.ctx.track_clicks) else url
        self.urls.append(shown)
        return len(self.urls)


def _with_refs(text: str, html: str, notes: _Notes) -> str:
    """``text`` with ``[n]`` placed after each link's text (found in order)."""
    if "<a" not in html:
        return text
    pos = 0
    for m in _A_RE.finditer(html):
        href = href_of(m.group(1))
        if not href or href.startswith("#"):
            continue
        n = notes.ref(href, link_hint(m.group(1)))
        label = strip_tags(m.group(2)).strip()
        at = text.find(label, pos) if label else -1
        if at < 0:
            text = f"{text}[{n}]"
            pos = len(text)
        else:
            end = at + len(label)
            text = f"{text[:end]}[{n}]{text[end:]}"
            pos = end + len(str(n)) + 2
    return text


def _block_lines(b: Block, notes: _Notes) -> list[str]:
    k = b.kind
    if k == "rule":
        return ["-" * 20]
    if k == "list":
        items_html = b.items_html or [""] * len(b.items)
        lines: list[str] = []
        for i, (t, h) in enumerate(zip(b.items, items_html, strict=False), 1):
            mark = f"{i}. " if b.ordered else "• "
            lines += _wrap(mark + _with_refs(t, h, notes), indent="  ")
        return lines
    if k == "table":
        rows = b.rows or [[line] for line in b.text.splitlines()]
        return [" | ".join(strip_tags(c).strip() for c in r) for r in rows]
    if k == "image":
        alt = b.image.alt if b.image else b.text
        return [f"[图片：{alt}]" if alt else "[图片]"]
    if k == "code":
        return b.text.splitlines() or [""]
    text = _with_refs(b.text, b.html, notes)
    if k == "quote":
        return [f"> {x}" for para in text.splitlines() for x in _wrap(para, WRAP_COLUMNS - 2)]
    if k == "heading":
        return [f"【{text}】"]
    return [x for para in text.splitlines() for x in _wrap(para)]


def _blocks(blocks: list[Block], notes: _Notes) -> list[str]:
    out: list[str] = []
    for b in blocks:
        out += _block_lines(b, notes)
        out.append("")
    return out


def _item_lines(item: Item, notes: _Notes, L: dict[str, str]) -> list[str]:
    out = [*_wrap(f"{item.number}. {item.title}"), ""]
    for m in item.meta:
        value = m.value.strip()
        if m.role == "url" or (value.startswith(("http://", "https://")) and " " not in value):
            value = f"{L['original']}[{notes.ref(value, m.link)}]"
        out += _wrap(f"{m.key}：{value}", indent="  ")
    if item.meta:
        out.append("")
    out += _blocks(item.body, notes)
    if item.analysis:
        out.append(f"【{item.analysis_label or L['analysis']}】")
        out += _blocks(item.analysis, notes)
    return out


def _notes_lines(notes: _Notes) -> list[str]:
    if not notes.urls:
        return []
    lines = [f"[{i}] {u}" for i, u in enumerate(notes.urls, 1)] + [""]
    notes.urls = []
    return lines


def render_text(issue: Issue, ctx: RenderContext, mode: Literal["full", "digest"]) -> str:
    """The text/plain part for ``mode``; see the module docstring."""
    ctx = ctx.in_variant(issue.variant)
    L = labels(issue.variant)
    index = LinkIndex(issue.links)
    notes = _Notes(ctx, index)
    archive = ctx.archive_url(issue)
    rule = "=" * 36
    out: list[str] = [
        L["greeting"].format(name=SLOTS["NAME"]),
        "",
        issue.title,
        " ｜ ".join(x for x in (issue_no(issue.number, issue.variant), issue.period) if x),
        f"{L['source']}：{issue.source} ｜ {L['author']}：{issue.author}",
        f"{L['read_web']}：{archive}",
        "",
    ]
    if mode == "digest":
        out += [*_wrap(L["digest_notice"]), f"{L['digest_link']}：{archive}", ""]
    out += [L["toc"]]
    for s in issue.sections:
        out.append(f"{s.numeral}、{s.title}" if s.numeral else s.title)
        out += [f"  {it.number}. {it.title}" for it in s.items]
    out.append("")
    if mode == "full" and issue.intro:
        out += _blocks(issue.intro, notes) + _notes_lines(notes)
    for s in issue.sections:
        out += [rule, f"{s.numeral}、{s.title}" if s.numeral else s.title, rule, ""]
        if mode == "full":
            out += _blocks(s.intro, notes) + _notes_lines(notes)
        for it in s.items:
            if mode == "full":
                out += _item_lines(it, notes, L) + _notes_lines(notes)
                continue
            out += _wrap(f"{it.number}. {it.title}")
            summary = item_summary(it)
            if summary:
                out += _wrap(summary)
            out += [f"{L['read_full']}：{archive}#{item_anchor(s, it)}", ""]
    out += [
        "-" * 36,
        L["why"].format(pub=ctx.publication_name),
        f"{L['unsubscribe']}：{ctx.unsubscribe_url}",
        f"{L['preferences']}：{ctx.preferences_url}",
        f"{L['archive']}：{archive}",
        f"{ctx.sender_name} · {ctx.postal_address}",
    ]
    lines: list[str] = []
    for line in out:
        lines += fold_text_line(line.rstrip(), LIMIT - 2)  # the sender allows 997 + CR
    while lines and not lines[-1]:
        lines.pop()
    text = "\n".join(_squeeze(lines)) + "\n"
    return text


def _squeeze(lines: list[str]) -> list[str]:
    """Collapse runs of blank lines to one."""
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return out
