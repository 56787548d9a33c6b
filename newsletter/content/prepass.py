"""The first pass over a brief's lines: chrome and the page's bottom, the heading families
this document uses (:mod:`.markers`), a hand-written contents list, and repeated block
labels. What it decides, the line-by-line classifier (:mod:`.classify`) relies on."""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from newsletter.content.header import choose_title, header_tokens
from newsletter.content.levels import drop_translations, glyph_leads, styled_items, three_levels
from newsletter.content.lines import (
    _LATIN_TAIL,
    TextImportResult,
    _Item,
    _key,
    _Line,
    _same_title,
    _Section,
    _slice,
)
from newsletter.content.markers import DocFamily, discover, heading_length, read_marker
from newsletter.content.pagebottom import mark_bottom
from newsletter.content.patterns import (
    Patterns,
)
from newsletter.content.tablerows import pipe_rows, spaced_rows

#: A number alone in ornaments: —01—, / 02 /, 【03】, PART 04, No. 5 (not a bare year).
_NUMBER_LINE = re.compile(
    r"^[^\w\s]{0,4}\s*(?:part|no\.?)?\s*(\d{1,2})\s*[^\w\s]{0,4}$", re.IGNORECASE
)


#: A lead-in before a colon: a short key (or a Latin phrase with its Chinese name) and the text.
_LEAD_IN = re.compile(
    r"^(?P<key>[\u4e00-\u9fff]{1,8}|[A-Za-z][A-Za-z ']{1,24}[\u4e00-\u9fff ]{0,8})\s*:\s*(?P<rest>.*)$"
)


_FIELD_AT = re.compile(r"^(?:[【\[〔](?P<key>[^】\]〕]{1,10})[】\]〕]|(?P<k2>[^:]{1,10}):)")


def _dot_leader(norm: str) -> bool:
    """``政策文件……………1``: words, a run of four or more leader dots, a page number.
    Read from the end in one pass (a pattern searched from every start would take
    quadratic time on a hostile line of dots)."""
    s = norm.rstrip()
    k = len(s)
    while k > 0 and s[k - 1].isdigit():
        k -= 1
    if not 1 <= len(s) - k <= 3:
        return False
    dots = 0
    while k > 0 and (s[k - 1] in ".．…·•" or s[k - 1].isspace()):
        dots += s[k - 1] in ".．…·•"
        k -= 1
    return dots >= 4 and k > 0


_LEAD_BRACKET = re.compile(r"^[【\[〔](?P<key>[^【】\[\]〔〕]{2,8})[】\]〕]\s*(?P<rest>\S.*)$")


def lead_in(norm: str) -> re.Match[str] | None:
    """``key：text`` or ``【key】text`` after any decoration: a lead-in candidate."""
    bare = _undecorated(norm)
    return _LEAD_IN.match(bare) or _LEAD_BRACKET.match(bare)


def _undecorated(norm: str) -> str:
    """``norm`` without the symbols and emoji that decorate its start (💡, ◆, ▍)."""
    k = 0
    while k < len(norm) and (
        norm[k] in " \ufe0f\u200d" or unicodedata.category(norm[k]) in ("So", "Sm", "Po")
    ):
        k += 1
    return norm[k:]


class Prepass:
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
        self.lead_labels: set[str] = set()
        self.glyph_leads: set[str] = set()  # → opening each item's analysis
        self.section_family: DocFamily | None = None
        self.item_family: DocFamily | None = None
        #: A level above the sections (第一部分 › 一、 › 1.): its headings name groups of
        #: sections, and each section's title is prefixed with its group's.
        self.part_family: DocFamily | None = None
        #: A heading numbered on a line of its own (``—01—`` above ``财税政策``): the
        #: title line's number → the number line, which takes the heading's class.
        self.number_lines: dict[int, _Line] = {}
        self.title_line: _Line | None = None
        #: Lines of a space-aligned table → their cells.
        self.aligned: dict[int, list[str]] = {}
        self.table_rules: set[int] = set()  # the ``| --- |`` line of a bar table
        #: A heading line's text after its title (``【title】paragraph``) → that text.
        self.tails: dict[int, str] = {}

    def prepass(self) -> None:
        p = self.p
        for ln in self.lines:
            hint = self.hints.get(ln.n)
            if not ln.text:
                ln.cls = "blank"
            elif hint in ("chrome", "contents"):
                ln.cls = hint
            elif (hint is None or ln.n in self.weak) and p.is_chrome(ln.norm):
                ln.cls = "chrome"
        mark_bottom(self.lines, p, self.hints, self.weak, self.is_field)
        content = [ln for ln in self.lines if not ln.cls]
        joined = self.pair_number_lines(content)
        content = [ln for ln in content if ln not in self.number_lines.values()]
        fields = {ln.n for ln in content if self.is_field(ln.norm)}
        families = discover(
            ["" if ln.n in fields else joined.get(ln.n, ln.norm) for ln in content],
            heading_max=p.heading_max,
            sentence_end=p.sentence_end,
        )
        by_shape = {fam.name: fam for fam in families}
        covered: dict[str, list[int]] = {}  # levels whose formatted lines carry markers
        for ln in content:
            marker = read_marker(ln.norm) if ln.n in self.weak else None
            if marker is not None and marker.shape in by_shape:
                covered.setdefault(self.hints.pop(ln.n, ""), []).append(ln.n)
        rest = {n: c for n, c in self.hints.items() if n in self.weak and c in covered}
        # one bold style for sections (numbered) and items (not): the others are items
        items = styled_items(covered.get("section", []), [n for n, c in rest.items()
                                                          if c == "section"])  # fmt: skip
        for n, cls in rest.items():  # else a bold caption among numbered items is not one
            if n in items or (cls == "item" and self.field_below(n)):
                self.hints[n] = "item"  # (an item whose number was forgotten has its fields)
            else:
                del self.hints[n]
        for ln in content:
            if self.hints.get(ln.n) not in (None, "section", "item") or ln.n in fields:
                continue
            norm = joined.get(ln.n, ln.norm)
            marker = read_marker(norm)
            fam = by_shape.get(marker.shape) if marker is not None else None
            if marker is None or fam is None:
                continue
            title_norm = norm[marker.title_start : marker.title_end].strip()
            short = heading_length(title_norm) <= p.heading_max
            if short and not p.sentence_end.search(title_norm):
                start = 0 if ln.n in joined else marker.title_start
                title = _slice(ln, start)
                if fam.name.startswith("enclosed"):
                    title = title[:-1].strip()  # the closing bracket
                if marker.title_end is not None:  # 【title】 and its paragraph on one line
                    whole = title
                    title = whole[: marker.title_end - start].strip()
                    self.tails[ln.n] = whole[marker.title_end - start + 1 :].strip()
                ln.heading = (fam, marker.number, title)
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
        drop_translations(self.lines)
        self.find_contents()
        self.choose_families()
        self.find_labels()
        self.find_title()
        self.find_aligned_rows()

    def field_below(self, n: int) -> bool:
        """Whether one of the two lines under line ``n`` is an item field."""
        rest = itertools.islice(self.lines, n, None)
        below = itertools.islice((x for x in rest if x.cls != "blank" and x.text), 2)
        return any(self.is_field(x.norm) for x in below)

    def opens_header(self, ln: _Line) -> bool:
        """Whether one of the three lines after ``ln`` gives the issue's number or period
        (a first line over its number line is the title, whatever its shape)."""
        after = [x for x in self.lines if x.n > ln.n and not x.cls][:3]
        for x in after:
            fields, _ = header_tokens(x.norm, self.p)
            if "number" in fields or "period" in fields:
                return True
        return False

    def find_aligned_rows(self) -> None:
        """Tables typed as text: with bars, then with runs of spaces (:mod:`.tablerows`)."""
        rows, rules = pipe_rows(self.lines)
        self.aligned.update(rows)
        self.table_rules |= rules
        self.aligned.update(spaced_rows(self.lines, self.aligned, self.table_rules))

    def find_title(self) -> None:
        """The title line, chosen among the lines before the first heading
        (:func:`.header.choose_title`)."""
        head: list[_Line] = []
        families = (self.section_family, self.item_family)
        for ln in self.lines:
            hint = self.hints.get(ln.n)
            if hint in ("section", "item") or (
                ln.heading is not None and ln.heading[0] in families
            ):
                if not head and hint is None and self.opens_header(ln):
                    ln.heading = None  # 【每周能源政策参考】 over its number line: the title
                    self.title_line = ln
                    return
                break
            if hint == "title":
                self.title_line = ln
                return
            if not ln.cls and ln.image is None and hint is None:
                head.append(ln)
        self.title_line = choose_title(head[:12], self.p)

    def is_field(self, norm: str) -> bool:
        """``【文号】…``, ``文号：…``: a line that starts with a field name."""
        m = _FIELD_AT.match(_undecorated(norm))
        if m is None:
            return False
        return self.field_name(re.sub(r"\s", "", m.group("key") or m.group("k2") or ""))

    def field_name(self, key: str) -> bool:
        """Whether ``key`` names an item field, a header field or a summary."""
        p = self.p
        return key in p.meta_keys or key in p.header_keys or key in p.summary_keys

    def pair_number_lines(self, content: list[_Line]) -> dict[int, str]:
        """A line that holds only a number in ornaments (``—01—``, ``/ 02 /``, ``PART 3``)
        directly above a short line without a marker numbers that line: returns the title
        lines' norms with the number put in front, for the family search."""
        joined: dict[int, str] = {}
        for ln, nxt in itertools.pairwise(content):
            m = _NUMBER_LINE.match(ln.norm)
            if m is None or nxt.n - ln.n > 2 or self.hints.get(nxt.n) not in (None, "section"):
                continue
            if read_marker(nxt.norm) is not None or len(nxt.norm) > self.p.heading_max:
                continue
            if self.is_field(nxt.norm) or ":" in nxt.norm:
                continue
            if self.p.sentence_end.search(nxt.norm) or ln.n in joined:
                continue
            joined[nxt.n] = f"{int(m.group(1)):02d} {nxt.norm}"
            self.number_lines[nxt.n] = ln
        return joined

    def find_contents(self) -> None:
        p = self.p
        before: _Line | None = None
        for ln in self.lines:  # 政策文件……………1: a contents entry with its page number
            if ln.cls == "blank":
                continue
            if not ln.cls and self.hints.get(ln.n) is None and _dot_leader(ln.norm):
                ln.cls = "contents"
                prev = before
                if prev is not None and prev.cls != "contents" and p.is_contents_heading(prev.norm):
                    prev.cls = "contents"  # its heading (目  录), however it is set
                    if prev.n in self.weak:
                        self.hints.pop(prev.n, None)
            before = ln
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
            headed = start > 0 and p.is_contents_heading(_undecorated(content[start - 1].norm))
            if len(run) >= 2 and repeated >= (0.5 if headed else 0.8) * len(run):
                for i in run:
                    if self.hints.get(content[i].n) is None:
                        content[i].cls = "contents"
                if headed and self.hints.get(content[start - 1].n) is None:
                    content[start - 1].cls = "contents"
        for i, ln in enumerate(content):  # a contents heading over an unnumbered list
            if (
                ln.cls
                or self.hints.get(ln.n) is not None
                or not p.is_contents_heading(_undecorated(ln.norm))
            ):
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
        """Block labels of this house style, learnt from their coming back: a short
        standalone line, not a heading or a field, that recurs word for word (研究院观点,
        ``Our Comments 律师评论`` under each item); and a lead-in ``key：`` that is not a
        field name, recurs, and opens prose (``我们认为：…``, ``💡解读：…``)."""
        seen: dict[str, int] = {}
        leads: dict[str, int] = {}
        p = self.p
        levels = (self.part_family, self.section_family, self.item_family)
        for ln in self.lines:  # (【简评】… opens a family of its own that is no level)
            if ln.cls or (ln.heading is not None and ln.heading[0] in levels):
                continue
            norm = ln.norm
            lead = lead_in(norm)
            if lead is not None:
                key, rest = lead.group("key").strip(), lead.group("rest")
                if len(key) == 1 and not any(key in w for w in p.analysis_words):
                    continue  # 评：… is a lead-in of its own; 注：… is a note
                known = self.field_name(key)
                prose = len(rest) > p.meta_value_max or p.sentence_end.search(rest)
                if not known and (not rest or prose):
                    leads[key] = leads.get(key, 0) + 1
                continue
            if not 2 <= len(norm) <= 24 or p.sentence_end.search(norm):
                continue
            if re.search(r"[:\t/]|\d", norm):
                continue
            seen[norm] = seen.get(norm, 0) + 1
        self.labels = {norm for norm, count in seen.items() if count >= 2}
        items = {x.n for x in self.lines if self.hints.get(x.n) == "item" or (x.heading and x.heading[0] == self.item_family)}  # fmt: skip
        self.glyph_leads = glyph_leads(self.lines, items, levels, self.is_field, p.sentence_end)
        self.lead_labels = {key for key, count in leads.items() if count >= 2}
        if self.has_analysis_marker():  # the brief marks its analysis (【编者按】, 点评：):
            words = p.analysis_words  # other recurring lead-ins are parts of the item
            self.lead_labels = {k for k in self.lead_labels if any(w in k for w in words)}

    def has_analysis_marker(self) -> bool:
        """Whether some line is an analysis marker of the pattern table (a label with
        one of its words in brackets, after a bar, or before a colon)."""
        a, words = self.p.analysis, self.p.analysis_words
        for ln in self.lines:
            if ln.cls:
                continue
            for kind in ("enclosed", "bracketed", "bar", "lead"):
                m = a[kind].match(ln.norm)
                if m is not None and (
                    kind in ("enclosed", "lead") or any(w in m.group("label") for w in words)
                ):
                    return True
        return False

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
        if len(order) > 1 and self.encloses(order[1], order[0]):
            order[0], order[1] = order[1], order[0]  # a lone 【本期概要】 came first
        self.section_family = order[0] if order else None
        self.item_family = order[1] if len(order) > 1 else None
        if len(order) > 2 and three_levels(self.lines, self.is_field, *order[:3]):
            self.part_family, self.section_family, self.item_family = order[:3]
        if self.family_over_styled():
            pass  # 一、 lines above the styled headings: they are the sections
        elif any(cls == "section" for cls in self.hints.values()):
            # sections marked by the document's formatting: the text's first family is
            # items, unless its lines are those headings themselves and nothing marks
            # the items (``## 一、…`` over numbered paragraphs): then the next family is
            rest = order
            if "item" not in self.hints.values():
                rest = [f for f in order if not self.hinted_as(f, "section")]
            self.section_family, self.item_family = None, rest[0] if rest else None
        for ln in self.lines:  # a hinted item/section heading fixes the family
            hint = self.hints.get(ln.n)
            if ln.heading is not None and hint == "item" and self.item_family is None:
                self.item_family = ln.heading[0]
        self.merge_sibling_glyphs()

    def hinted_as(self, fam: DocFamily, cls: str) -> bool:
        """Whether every heading of ``fam`` is a line the document's formatting made ``cls``."""
        at = [ln.n for ln in self.lines if ln.heading is not None and ln.heading[0] == fam]
        return bool(at) and all(self.hints.get(n) == cls for n in at)

    def encloses(self, outer: DocFamily, inner: DocFamily) -> bool:
        """Whether ``outer``'s lines hold ``inner``'s between them far more than the other
        way round: the outer level is the one whose every gap has the inner level in it."""

        def filled(a: DocFamily, b: DocFamily) -> float:
            at = [ln.n for ln in self.lines if ln.heading is not None and ln.heading[0] == a]
            bs = [ln.n for ln in self.lines if ln.heading is not None and ln.heading[0] == b]
            if len(at) < 2:
                return 0.0
            gaps = list(itertools.pairwise(at))
            return sum(any(x < n < y for n in bs) for x, y in gaps) / len(gaps)

        return filled(outer, inner) >= 0.8 and filled(inner, outer) <= 0.4

    def family_over_styled(self) -> bool:
        """A page whose styled headings (``<h3>``) sit under numbered lines of the text
        (``一、中央政策`` drawn as a banner): the numbered lines are the sections and the
        styled headings the items.  True when it turned the hints that way."""
        fam = self.section_family
        styled = sorted(
            n for n, cls in self.hints.items() if cls == "section" and n not in self.weak
        )
        if fam is None:
            return False
        if not styled:
            return False
        mine = [ln.n for ln in self.lines if ln.heading is not None and ln.heading[0] == fam]
        mine = [n for n in mine if n not in self.hints]
        if len(mine) < 2 or mine[0] > styled[0] or len(styled) <= len(mine):
            return False
        for n in styled:
            self.hints[n] = "item"
        self.item_family = None
        return True

    def merge_sibling_glyphs(self) -> None:
        """Items marked ``▌`` in one section and ``●`` in the next: glyph families that
        never meet under one section are one level, the items'."""
        items, sections = self.item_family, self.section_family
        if items is None or sections is None or not items.name.startswith("glyph"):
            return
        where: dict[DocFamily, set[int]] = {}
        section = 0
        for ln in self.lines:
            if ln.heading is None or ln.cls:
                continue
            fam = ln.heading[0]
            if fam == sections:
                section += 1
            elif fam.name.startswith("glyph") or fam == items:
                where.setdefault(fam, set()).add(section)
        taken = set(where.get(items, set()))
        for fam, found in sorted(where.items(), key=lambda kv: min(kv[1])):
            if fam == items or found & taken or 0 in found:
                continue
            taken |= found
            for ln in self.lines:
                if ln.heading is not None and ln.heading[0] == fam:
                    ln.heading = (items, ln.heading[1], ln.heading[2])
