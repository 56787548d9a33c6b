"""House styles that are learnt: a correction as a pattern (a marker shape, a bracket pair,
or the line itself), never a line number, and the lines a publication's rules cover."""

from __future__ import annotations

from collections.abc import Sequence

from newsletter.content.lines import CLASSES, _Line
from newsletter.content.markers import read_marker
from newsletter.content.patterns import (
    normalise,
)


def rule_for(text: str, cls: str) -> tuple[str, str] | None:
    """The pattern that correcting ``text`` to ``cls`` teaches a publication.

    A line that starts with a marker teaches its marker's shape ("lines that start
    like this are items"); any other line teaches itself, normalised ("this line is
    page chrome").  Never a line number, so it applies to next week's brief.
    """
    norm = normalise(text)
    if not norm or cls not in CLASSES or cls == "blank":
        return None
    enclosed = _enclosure(norm)
    if enclosed is not None and cls in ("section", "item", "analysis"):
        return "enclosed", enclosed
    marker = read_marker(norm)
    if marker is not None and cls in ("section", "item", "body"):
        return "marker", marker.shape
    return "line", norm[:200]


_PAIRS = {"【": "】", "[": "]", "〔": "〕", "(": ")", "《": "》", "「": "」", "『": "』", "<": ">"}


def _unenclosed(ln: _Line) -> str:
    """A heading written as ``【要闻】`` is titled ``要闻``."""
    text = ln.text.strip()
    if _enclosure(ln.norm) is not None and len(text) >= 3:
        return text[1:-1].strip() or text
    return text


def _enclosure(norm: str) -> str | None:
    """``【要闻】`` → ``【】``: a short line wholly inside one pair of brackets."""
    if len(norm) < 3 or len(norm) > 20 or norm[0] not in _PAIRS:
        return None
    close = _PAIRS[norm[0]]
    inner = norm[1:-1]
    if norm[-1] != close or norm[0] in inner or close in inner:
        return None
    return norm[0] + close


def _learnt(norms: list[str], rules: Sequence[tuple[str, str, str]]) -> dict[int, str]:
    """Line → class for every line a publication's rules cover."""
    by_line = {pattern: cls for kind, pattern, cls in rules if kind == "line"}
    by_marker = {pattern: cls for kind, pattern, cls in rules if kind == "marker"}
    by_pair = {pattern: cls for kind, pattern, cls in rules if kind == "enclosed"}
    out: dict[int, str] = {}
    for n, norm in enumerate(norms, 1):
        if not norm:
            continue
        if norm in by_line:
            out[n] = by_line[norm]
        elif by_pair and (pair := _enclosure(norm)) in by_pair:
            out[n] = by_pair[pair]
        elif (marker := read_marker(norm)) is not None and marker.shape in by_marker:
            out[n] = by_marker[marker.shape]
    return out
