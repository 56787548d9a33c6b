"""Plain text copied out of a PDF: every line broken at the page's width, and the page
numbers and running headers of each page break standing between two halves of a sentence.

Read from the text itself, never from a list: a text is *wrapped* when a large share of its
lines fill the same width (most briefs keep a paragraph on one line, so their line lengths
vary widely); a *page number* is a line holding only a number in ornaments whose values
count up a page apart; a *running header* is a line repeated just after those numbers.
A wrapped line is joined to the next unless that next line opens a paragraph (indented) or
a heading, a field or a list entry. Line numbers are an editor's: the joined text stands on
the paragraph's first line, and the lines it took become empty.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable

from newsletter.content.markers import read_marker

__all__ = ["colophon", "cover_notes", "unquote", "unwrap"]

#: — 3 —, - 3 -, 第3页, 3 / 12, [3]: a page number and its ornaments
_PAGE_NUMBER = re.compile(
    r"^[\s\-—–－~·.\[(（]*(?:第\s*)?(?P<n>\d{1,3})\s*(?:页|/\s*\d{1,3})?[\s\-—–－~·.\])）]*$"
)
_URL_END = re.compile(r"https?://\S+$")
_URL_PART = re.compile(r"^[A-Za-z0-9/_.?=&%#~+:;@!$,'*-]+$")
#: a field's key at the start of a line (发文机关：…, Issuer: …)
_KEY = re.compile(r"^\s*[【\[]?[\w\s]{1,10}?[】\]]?\s*[:：]")
_SENTENCE = re.compile(r"[。！？；!?;]|[，,].*[，,。]")
#: the least share of lines that must fill the width for a text to count as wrapped
_FULL_SHARE = 0.3
_MIN_LINES = 8
#: the fewest lines between two page numbers
_PAGE_LINES = 8
#: the narrowest page counted (in half-width cells: 25 CJK characters)
_MIN_WIDTH = 50
#: how a line that ends its sentence ends
_ENDS = re.compile(r"[。！？；：!?;:.）)」』”\"]$")


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s.rstrip())


def _indented(s: str) -> bool:
    return s.startswith(("\u3000", "  ", "\t"))


def page_furniture(raws: list[str]) -> set[int]:
    """Indexes of the page numbers (counting up across the text, a page apart, at least
    two) and of the lines repeated just after them (the next page's running header)."""
    numbers = [(k, int(m.group("n"))) for k, r in enumerate(raws) if (m := _PAGE_NUMBER.match(r))]
    pages: list[int] = []
    run: list[tuple[int, int]] = []
    for k, n in [*numbers, (-1, -1)]:  # runs that count up, a page apart (not 东部 1 中部 2)
        if run and n == run[-1][1] + 1:
            run.append((k, n))
            continue
        gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(run))
        if gaps and gaps[len(gaps) // 2] >= _PAGE_LINES:
            pages += [k2 for k2, _ in run]
        run = [(k, n)]
    if not pages:
        return set()
    out = set(pages)
    near: dict[str, list[int]] = {}
    for k in pages:
        for j in (k + 1, k + 2):  # the next page's header (a line before is the page's text)
            if 0 <= j < len(raws) and raws[j].strip() and j not in out:
                near.setdefault(raws[j].strip(), []).append(j)
    for js in near.values():
        if len(js) >= 2:
            out.update(js)
    return out


def unwrap(raws: list[str]) -> tuple[list[str], set[int]]:
    """The lines with each wrapped paragraph joined (see the module's docstring), and the
    indexes of the page furniture; the lines as they were, and none, when the text is not
    wrapped."""
    width = {k: _width(r) for k, r in enumerate(raws) if r.strip()}
    content = list(width)
    widths = sorted(width.values())
    if len(widths) < _MIN_LINES:
        return raws, set()
    ceiling = widths[int(len(widths) * 0.9)]
    full_at = ceiling - 4
    full = {k for k in content if full_at <= width[k] <= ceiling + 2}
    over = sum(1 for w in widths if w > ceiling + 2)
    # the signature of a page's width: many lines fill it, hardly any goes past it, and
    # most of those that fill it stop in the middle of a sentence
    broken = sum(1 for k in full if not _ENDS.search(raws[k].rstrip()))
    if (
        ceiling < _MIN_WIDTH
        or len(full) < max(_MIN_LINES, _FULL_SHARE * len(content))
        or over > 0.05 * len(content)
        or broken < 0.5 * len(full)
    ):
        return raws, set()
    # (a running header is shorter than the page: a full line is never one)
    furniture = {k for k in page_furniture(raws) if k not in full}
    out = list(raws)
    parts: dict[int, list[str]] = {}  # a paragraph's first line -> its pieces, in order
    head: int | None = None  # the line the current paragraph is joined on
    for k, r in enumerate(raws):
        if k in furniture:
            continue
        if head is not None and r.strip() and not _opens(r) and not _heading_after(raws[k - 1], r):
            pieces = parts.setdefault(head, [raws[head].rstrip()])
            pieces.append(_glue(pieces[-1], r))  # (one line looked at: never quadratic)
            out[k] = ""
            if k not in full and not _URL_END.search(r):
                head = None
            continue
        head = k if r.strip() and (k in full or _URL_END.search(r)) else None
    for k, pieces in parts.items():
        out[k] = "".join(pieces)
    return out, furniture


def _heading_after(prev: str, line: str) -> bool:
    """A short line with no sentence of its own after a line that ends one (专家观点,
    Key figures): a subheading, not the rest of a paragraph."""
    b = line.strip()
    return bool(_ENDS.search(prev.rstrip())) and len(b) <= 20 and not _ENDS.search(b)


def _opens(line: str) -> bool:
    """Whether ``line`` starts something of its own: a paragraph (indented), a heading or
    list entry (a marker), a field (``key：``)."""
    if _indented(line):
        return True
    s = line.strip()
    if _KEY.match(s) is not None:
        return True
    # a heading is a short line of its own: 一、二线城市的成交变化，而非…。 goes on a sentence
    return read_marker(s) is not None and _SENTENCE.search(s) is None


def _glue(prev: str, line: str) -> str:
    """``line`` as it continues the piece ``prev``: a link broken at the margin goes on
    without a space, two words of Latin get one between them, Chinese none."""
    b = line.strip()
    if _URL_END.search(prev) and _URL_PART.match(b):
        return b
    if not prev or not b or not prev[-1].isascii() or not b[0].isascii():
        return b
    if prev[-1].isalnum() and b[0].isalnum():
        return " " + b
    if prev[-1] in ".,;:!?)" and b[0].isalpha():
        return " " + b  # (English: in full. + The measure; 增长3. + 2% stays as it is)
    return b


_QUOTE = re.compile(r"^\s*(?:>\s?)+")


def unquote(raws: list[str]) -> list[str]:
    """A mail's quoted copy (``> `` before every line of a forwarded brief): when most of
    the text is quoted, the marks go; line numbers stay."""
    quoted = sum(1 for r in raws if _QUOTE.match(r))
    content = sum(1 for r in raws if r.strip())
    if quoted < _MIN_LINES or quoted < 0.5 * content:
        return raws
    return [_QUOTE.sub("", r) for r in raws]


def cover_notes(norms: list[str], is_mail_header: Callable[[str], bool]) -> set[int]:
    """Indexes of the notes of a forwarding chain: a mail forwarded on carries each
    forwarder's note above the header block (From, Sent, To, Subject) of the mail it
    forwards. The chain starts with the text (its first lines are a header block) and its
    blocks follow each other closely (a note is a few lines); what stands above its last
    block is the forwarders'. A header block quoted further down, inside the brief (an
    item that quotes a mail), is the brief's and ends nothing."""
    blocks: list[tuple[int, int]] = []  # (first, last) index of each block of 3 or more
    run: list[int] = []
    for k, s in enumerate([*norms, ""]):
        if s and is_mail_header(s):
            run.append(k)
            continue
        if not s and run:
            continue  # (a blank inside the block)
        if len(run) >= 3:
            blocks.append((run[0], run[-1]))
        run = []
    content = [k for k, s in enumerate(norms) if s]
    if not blocks or not content or blocks[0][0] != content[0]:
        return set()
    last = blocks[0]
    for block in blocks[1:]:
        if sum(1 for k in content if last[1] < k < block[0]) > _NOTE_LINES:
            break
        last = block
    if last is blocks[0]:
        return set()  # one mail, not forwarded: its headers are chrome, the rest its text
    return {k for k in range(last[0]) if norms[k] and not is_mail_header(norms[k])}


#: the most lines a forwarder's note holds (greeting, two sentences, a signature)
_NOTE_LINES = 8


_RULE = re.compile(r"^\s*[—\-_=─━~·*]{4,}\s*$")


def colophon(raws: list[str], is_chrome: Callable[[str], bool] = lambda s: False) -> set[int]:
    """Indexes of a colophon set off under a closing rule (``——————`` then who to write to
    for a subscription, a disclaimer): the rule, and at most three short lines after it to
    the end of the text, one of which gives an address to write to (a mailbox, a link, a
    phone) or is chrome by the catalogue. Three dates or two table rows under a rule are
    the brief's and stay."""
    content = [k for k, r in enumerate(raws) if r.strip()]
    for at in range(len(content) - 2, max(len(content) - 5, -1), -1):
        k = content[at]
        if _RULE.match(raws[k]):
            after = content[at + 1 :]
            short = all(len(raws[j].strip()) <= 120 for j in after)
            reached = any(_ADDRESS.search(raws[j]) or is_chrome(raws[j]) for j in after)
            return {k, *after} if short and reached else set()
    return set()


#: a mailbox, a link or a phone number: how a colophon says where to write
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|https?://|(?:电话|热线|Tel)\s*[:：]?\s*[\d+(（]")
