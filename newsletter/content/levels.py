"""How many levels a brief's headings make, read from the brief: which numbered family
is the items when there are three, and which styled lines are items when one style
marks both the sections and the items."""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable

from newsletter.content.lines import _Line
from newsletter.content.markers import DocFamily
from newsletter.content.patterns import has_han

__all__ = ["drop_translations", "glyph_leads", "styled_items", "three_levels"]


def three_levels(
    lines: list[_Line], is_field: Callable[[str], bool], top: DocFamily, mid: DocFamily,
    low: DocFamily,
) -> bool:  # fmt: skip
    """Whether the third family is the items: its headings carry the fields (a field
    line among the two lines under it) and the second family's do not, and every gap
    between two headings of the first holds one of the second."""

    def below(i: int) -> list[_Line]:  # the lines under a heading, to the next one
        out: list[_Line] = []
        for x in lines[i + 1 :]:
            if x.heading is not None or len(out) == 2:
                break
            if x.cls != "blank":
                out.append(x)
        return out

    def fielded(fam: DocFamily) -> float:
        at = [i for i, ln in enumerate(lines) if ln.heading and ln.heading[0] == fam]
        near = [any(is_field(x.norm) for x in below(i)) for i in at]
        return sum(near) / len(near) if near else 0.0

    tops = [ln.n for ln in lines if ln.heading and ln.heading[0] == top]
    mids = [ln.n for ln in lines if ln.heading and ln.heading[0] == mid]
    grouped = all(any(a < n < b for n in mids) for a, b in itertools.pairwise(tops))
    return grouped and len(tops) >= 2 and fielded(low) >= 0.5 and fielded(mid) < 0.2


def styled_items(marked: list[int], unmarked: list[int]) -> list[int]:
    """Lines set apart by the same formatting as the numbered sections (bold titles under
    **一、…** in a Markdown brief) but carrying no number (``unmarked``): the items, when
    the numbered ones (``marked``) are at least two and every gap between them holds at
    least one of the others."""
    if len(marked) < 2:
        return []
    after = [n for n in unmarked if n > marked[0]]
    if not all(any(a < n < b for n in after) for a, b in itertools.pairwise(marked)):
        return []
    return after


def glyph_leads(
    lines: list[_Line], items: set[int], levels: tuple[DocFamily | None, ...],
    is_field: Callable[[str], bool], sentence_end: re.Pattern[str],
) -> set[str]:  # fmt: skip
    """Symbols that open an item's analysis in this brief (``→ 政策按预期延续…``): each
    opens prose that closes its item (nothing of the item comes after it), comes back
    under at least two items, and never twice under one item (a bulleted list would).
    ``items``: the item headings' line numbers."""
    under: dict[str, list[int]] = {}  # symbol -> the item each use stands under
    closing: dict[str, bool] = {}  # symbol -> every use closed its item so far
    item = 0
    open_glyph: str | None = None  # the symbol whose prose is the last seen of its item
    for ln in lines:
        if ln.n in items:
            item, open_glyph = item + 1, None
            continue
        if ln.cls or not ln.norm or (ln.heading is not None and ln.heading[0] in levels):
            continue
        glyph, rest = ln.norm[0], ln.norm[1:].strip()
        is_lead = unicodedata.category(glyph) in ("So", "Sm") and len(rest) >= 20
        if is_lead and sentence_end.search(rest) and not is_field(rest):
            under.setdefault(glyph, []).append(item)
            open_glyph = glyph
        elif open_glyph is not None:  # the item goes on after the symbol's prose
            closing[open_glyph] = False
            open_glyph = None
    return {
        g
        for g, at in under.items()
        if len(at) >= 2 and 0 not in at and len(set(at)) == len(at) and closing.get(g, True)
    }


def drop_translations(lines: list[_Line]) -> None:
    """A heading's translation on the line under it (``一、外商投资`` over ``I. Foreign
    Investment``, numbered alike, with no Chinese of its own) is no heading: it stays as
    text, and its numbering is no level of the brief."""
    shown = [ln for ln in lines if not ln.cls and ln.text]
    for ln, nxt in itertools.pairwise(shown):
        if ln.heading is None or nxt.heading is None or nxt.heading[1] != ln.heading[1]:
            continue
        if has_han(ln.heading[2]) and not has_han(nxt.heading[2]):
            nxt.heading = None
