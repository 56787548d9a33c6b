"""A brief as lines, whatever it came from: plain text, a Word file or a web page.

Word and HTML readers turn their document into the same thing the plain-text
import reads (one line per paragraph, table rows as tab-separated cells), plus
what plain text cannot carry: the structure the author marked (heading styles,
``<h2>``), the addresses behind link texts, and images.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["SENTENCE_END", "Image", "SourceText", "add_table", "infer_structure"]

#: a line that ends like a sentence or a clause (not a heading or a caption)
SENTENCE_END = re.compile(r"[。；，！？;,!?]$")
Cell = tuple[str, list[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class Image:
    name: str  # file name under the images/ folder
    data: bytes
    alt: str = ""


@dataclass(slots=True)
class SourceText:
    lines: list[str] = field(default_factory=list)
    #: 1-based line → class the document itself gives it (title, section, item, chrome)
    structure: dict[int, str] = field(default_factory=dict)
    #: 1-based line → (link text, address) pairs on that line
    links: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    #: 1-based line → the image that line stands for
    images: dict[int, Image] = field(default_factory=dict)
    #: lines whose structure comes from formatting alone (bold, size): a marker in the
    #: text outranks it
    weak: set[int] = field(default_factory=set)
    kind: str = "text"  # text, docx, html
    notes: list[str] = field(default_factory=list)  # what the reader dropped or changed

    def add(
        self, text: str, *, cls: str | None = None, links: list[tuple[str, str]] | None = None
    ) -> int:
        """Append one line (newlines inside become spaces); returns its number."""
        self.lines.append(" ".join(text.replace("\r", "\n").split("\n")))
        n = len(self.lines)
        if cls:
            self.structure[n] = cls
        if links:
            self.links[n] = links
        return n

    def add_image(self, image: Image) -> int:
        n = self.add(f"[{image.alt or image.name}]")
        self.images[n] = image
        return n

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def add_table(src: SourceText, rows: Sequence[Sequence[Cell]], *, head: bool = False) -> None:
    """A table: a two-column table of short keys becomes ``key：value`` lines (an item's
    metadata when it stands under one; its header row, ``head``, names the columns and is
    left out); any other becomes tab-separated rows."""
    heading = [" ".join(text.split()) for text, _ in rows[0]] if head and len(rows) > 1 else None
    rows = [
        [(" ".join(text.split()), links) for text, links in row]
        for row in rows
        if any(text.strip() for text, _ in row)
    ]
    if not rows:
        return
    two = all(len(r) == 2 for r in rows)
    keys_short = all(
        0 < len(r[0][0]) <= 10
        and not SENTENCE_END.search(r[0][0])
        and not any(ch.isdigit() for ch in r[0][0])  # "7天", "2026": data, not keys
        for r in rows
    )
    for row in rows:
        links = [link for _, cell_links in row for link in cell_links]
        if two and keys_short and heading is not None and [t for t, _ in row] == heading:
            heading = None  # the columns' names (项目 | 内容), not a field
            continue
        if two and keys_short:
            src.add(f"{row[0][0].rstrip('：:')}：{row[1][0]}", links=links)
        else:
            src.add("\t".join(text or " " for text, _ in row), links=links)
    src.add("")


Para = tuple[int, str, int | None, float, bool]  # line, text, heading level, size, bold


def _levels_by_numbering(paras: Sequence[Para]) -> list[Para]:
    """A heading whose markup puts it at another level than the rest of its numbering, but
    whose number continues theirs, sits at their level (``# 二、…`` after ``## 一、…``,
    ``#### 3.`` after ``### 2.``, in Markdown written by hand). Subheadings that number
    afresh under each item (``#### 1. 背景``) keep their own level."""
    from newsletter.content.markers import read_marker

    out = list(paras)
    last: dict[str, tuple[int, int]] = {}  # shape -> (level, number) of its last heading
    for k, (n, text, lv, size, bold) in enumerate(paras):
        marker = read_marker(text.strip()) if lv is not None else None
        if marker is None or marker.shape.startswith("glyph") or lv is None:
            continue
        before = last.get(marker.shape)
        if before is not None and before[0] != lv and marker.number == before[1] + 1:
            lv = before[0]  # it goes on with the numbering: its level is theirs
            out[k] = (n, text, lv, size, bold)
        last[marker.shape] = (lv, marker.number)
    return out


def infer_structure(src: SourceText, paras: Sequence[Para], body_size: float) -> None:
    """The structure the author marked: heading levels where used (0 = title), else short
    paragraphs set apart by size or bold, ranked by size (outermost largest)."""
    paras = _levels_by_numbering(paras)
    styled = [(n, lv) for n, text, lv, _, _ in paras if lv is not None and text.strip()]
    if len(styled) == 1 and styled[0][1] in (0, 1):
        # a saved page whose only heading is its title: the title, then the formatting
        src.structure[styled[0][0]] = "title"
        paras = [x for x in paras if x[0] != styled[0][0]]
        styled = []
    if styled:
        levels = sorted({lv for _, lv in styled})
        first_n, first_level = styled[0]
        title_level: int | None = None
        once = sum(1 for _, lv in styled if lv == first_level) == 1
        # a Title style, or a level-1 heading used once at the top, is the title
        if first_level == 0 or (first_level == 1 and once):
            title_level = first_level
            src.structure[first_n] = "title"
        rest = [
            lv for lv in levels if lv != title_level or sum(1 for _, x in styled if x == lv) > 1
        ]
        names = dict(zip(rest, ("section", "item"), strict=False))
        for n, lv in styled:
            if n not in src.structure and lv in names:
                src.structure[n] = names[lv]
        if "item" in names.values() or not names:
            return
        # headings styled for the sections only: the items are set apart by formatting,
        # under those sections (not on a cover or a contents page before them)
        first_section = min(n for n, c in src.structure.items() if c == "section")
        paras = [x for x in paras if x[2] is None and x[0] > first_section]
        levels_left: tuple[str, ...] = ("item",)
    else:
        levels_left = ("section", "item")
    # a paragraph with no size of its own is at the body size; smaller print (a grey
    # 13px line of fields) is never a heading
    paras = [(n, text, lv, size or body_size, bold) for n, text, lv, size, bold in paras]
    sizes = sorted(size for _, text, _, size, bold in paras if text.strip() and not bold)
    usual = sizes[len(sizes) // 2] if sizes else body_size
    counts: dict[str, int] = {}
    for _, text, _, _, _ in paras:
        counts[text.strip()] = counts.get(text.strip(), 0) + 1
    candidates: dict[tuple[float, bool], list[int]] = {}
    for n, text, _, size, bold in paras:
        text = text.strip()
        if not text or len(text) > 60 or SENTENCE_END.search(text) or counts[text] > 1:
            continue
        if not re.search(r"[^\W\d_]", text):  # a number alone (02) numbers the line below
            continue
        if size > usual + 0.5 or (bold and size >= usual - 0.5):
            candidates.setdefault((size, bold), []).append(n)
    if not candidates:
        return
    # larger is outer; at one size, the style that appears first is (bold or not)
    ranked = sorted(candidates, key=lambda k: (-k[0], min(candidates[k])))
    first = min(n for ns in candidates.values() for n in ns)
    top = ranked[0]
    if (
        "title" not in src.structure.values()
        and len(candidates[top]) == 1
        and candidates[top][0] == first
    ):
        src.structure[first] = "title"
        ranked = ranked[1:]
    # a style met once, above the first line of any style that comes back (a 14 pt 第7期
    # under the title), is the header's, not a level of the outline
    starts = [min(candidates[k]) for k in ranked if len(candidates[k]) > 1]
    if starts:
        ranked = [k for k in ranked if len(candidates[k]) > 1 or candidates[k][0] > min(starts)]
    for key, name in zip(ranked, levels_left, strict=False):
        for n in candidates[key]:
            if n not in src.structure:
                src.structure[n] = name
                src.weak.add(n)
