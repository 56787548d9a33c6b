"""The import patterns (``newsletter/resources/data/import-patterns.yaml``) and line normalising.

Patterns are written once, in Simplified with half-width punctuation, and are
matched against :func:`normalise` of a line, so they recognise either script
and either width.  See the data file for what each family means.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from newsletter.content.numerals import parse_numeral
from newsletter.content.script import to_hans

__all__ = [
    "Patterns",
    "clean",
    "display_form",
    "fold_width",
    "meta_role",
    "normalise",
    "normalise_lines",
    "has_han",
    "numeral_value",
    "patterns",
]

_WIDTH = {i: i - 0xFEE0 for i in range(0xFF01, 0xFF5F)}
_WIDTH.update({0x3000: 0x20, 0xA0: 0x20, 0xFF5C: 0x7C, 0x2223: 0x7C})
_ZERO_WIDTH = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def has_han(text: str) -> bool:
    """Whether ``text`` holds a Chinese character (a heading's translation holds none)."""
    return _CJK.search(text) is not None


_MD_LEAD = re.compile(r"^(?:#{1,6}\s+|>\s*|[-*+]\s+)+")
_MD_STRONG = re.compile(r"(\*\*|__)(.+?)\1")
_CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"


def clean(raw: str) -> str:
    """The line as written, without zero-width characters and outer spaces."""
    return _ZERO_WIDTH.sub("", raw).replace("\u3000", " ").replace("\xa0", " ").strip()


def _collapse_gaps(s: str) -> str:
    """Drop the spaces between single Chinese characters (``本 期 目 錄`` → ``本期目錄``)."""
    parts = re.split(r"(\s+)", s)
    out: list[str] = []
    for k, part in enumerate(parts):
        if k % 2 and 0 < k < len(parts) - 1:
            left, right = parts[k - 1], parts[k + 1]
            single = len(left) == 1 or len(right) == 1 or len(right.split()[0]) == 1
            if single and left and right and _CJK.match(left[-1]) and _CJK.match(right[0]):
                continue
        out.append(part)
    return "".join(out)


def display_form(raw: str) -> str:
    """The line as written with gaps collapsed and Markdown decoration stripped.

    Width is not folded here, so a slice of this form keeps the author's
    punctuation; :func:`normalise` folds it character for character, so
    positions in the two forms agree.
    """
    s = _collapse_gaps(clean(raw))
    s = _MD_LEAD.sub("", s)
    return _MD_STRONG.sub(r"\2", s).strip()


def fold_width(s: str) -> str:
    """Full-width ASCII → half-width, one character for one."""
    return s.translate(_WIDTH)


def normalise(raw: str) -> str:
    """The form patterns are matched against: :func:`display_form`, width and script folded."""
    return to_hans(fold_width(display_form(raw)))


def normalise_lines(lines: list[str]) -> tuple[list[str], list[str]]:
    """``(display forms, normalised forms)`` of many lines, converting the script in one call."""
    shown = [display_form(raw) for raw in lines]
    joined = to_hans(fold_width("\n".join(shown)))
    norm = joined.split("\n")
    if len(norm) != len(shown):  # a conversion joined or split lines: go line by line
        norm = [to_hans(fold_width(s)) for s in shown]
    return shown, [_wide_ordinal_dot(a, b) for a, b in zip(shown, norm, strict=True)]


_WIDE_DOT_ORDINAL = re.compile(r"^\s*\d{1,3}．")


def _wide_ordinal_dot(shown: str, norm: str) -> str:
    """``2．10月…``: a full-width dot after a leading number ends an ordinal (nobody
    types a decimal point full-width), so it is matched as ``、``, never as ``2.10``."""
    m = _WIDE_DOT_ORDINAL.match(shown)
    if m is None or len(shown) != len(norm) or norm[m.end() - 1] != ".":
        return norm
    return norm[: m.end() - 1] + "、" + norm[m.end() :]


def numeral_value(s: str) -> int | None:
    """``"3"``, ``"三"``, ``"十二"``, ``"贰"`` or ``"③"`` → its value."""
    if s.isdecimal():
        return int(s)
    if len(s) == 1 and s in _CIRCLED:
        return _CIRCLED.index(s) + 1
    return parse_numeral(s)


@dataclass(frozen=True)
class Patterns:
    heading_max: int
    sentence_end: re.Pattern[str]
    contents_heading: re.Pattern[str]
    chrome: tuple[tuple[str, re.Pattern[str]], ...]
    tracker_words: frozenset[str]
    tail_max: int
    header_keys: dict[str, str]
    issue_numbers: tuple[re.Pattern[str], ...]
    period: re.Pattern[str]
    meta_keys: dict[str, str]
    meta_key_max: int
    meta_value_max: int
    summary_keys: tuple[str, ...]
    analysis: dict[str, re.Pattern[str]]
    analysis_words: tuple[str, ...]

    def issue_number(self, norm: str) -> re.Match[str] | None:
        """The first issue-number form found in ``norm`` (group ``num``), in order of trust."""
        for regex in self.issue_numbers:
            m = regex.search(norm)
            if m is not None:
                return m
        return None

    def is_contents_heading(self, norm: str) -> bool:
        """Whether ``norm`` heads a contents list (目录, 【本期目录】, ▍本期导读)."""
        bare = re.sub(r"\s", "", _ornaments_off(norm))
        unbracketed = re.sub(r"^[【\[〔［(（](.*)[】\]〕］)）]$", r"\1", bare)
        return any(self.contents_heading.match(x) for x in (bare, unbracketed))

    def is_chrome(self, norm: str) -> str | None:
        """The chrome family ``norm`` belongs to, if any."""
        # *扫码关注…*: emphasis left over from Markdown; - 往期回顾 -, ▼ 阅读原文 ▼: ornaments
        bare = _ornaments_off(norm)
        for family, regex in self.chrome:
            if regex.match(norm) or (bare != norm and regex.match(bare)):
                return family
        if norm.lower() in self.tracker_words:
            return "tracker"
        return None


def _ornaments_off(norm: str) -> str:
    """``norm`` without the emphasis marks, dashes and symbols around it."""
    a, b = 0, len(norm)
    while a < b and (norm[a] in "*_~ " or unicodedata.category(norm[a]) in _ORNAMENT):
        a += 1
    while b > a and (norm[b - 1] in "*_~ " or unicodedata.category(norm[b - 1]) in _ORNAMENT):
        b -= 1
    return norm[a:b]


#: the Unicode categories of an ornament: dashes, symbols (▼ ◆ ★ →, emoji)
_ORNAMENT = ("Pd", "So", "Sm", "Sk")


def _synonyms(table: dict[str, Any]) -> dict[str, str]:
    return {to_hans(str(word)): role for role, words in table.items() for word in words or []}


@lru_cache(maxsize=1)
def patterns() -> Patterns:
    """The compiled pattern table (read once per process)."""
    raw = (
        resources.files("newsletter.resources")
        .joinpath("data/import-patterns.yaml")
        .read_text("utf-8")
    )
    d = yaml.safe_load(raw)
    chrome = tuple((name, re.compile(p, re.I)) for name, ps in d["chrome"].items() for p in ps)
    return Patterns(
        heading_max=int(d["heading_max_chars"]),
        sentence_end=re.compile(d["sentence_end"]),
        contents_heading=re.compile(d["contents_heading"]),
        chrome=chrome,
        tracker_words=frozenset(str(w).lower() for w in d["tracker_words"]),
        tail_max=int(d["tail_max_chars"]),
        header_keys=_synonyms(d["header_keys"]),
        issue_numbers=tuple(re.compile(x) for x in d["issue_number"]),
        period=re.compile(d["period"]),
        meta_keys=_synonyms(d["meta_keys"]),
        meta_key_max=int(d["meta_key_max_chars"]),
        meta_value_max=int(d["meta_value_max_chars"]),
        summary_keys=tuple(d["summary_keys"]),
        analysis={k: re.compile(v) for k, v in d["analysis"].items() if k != "words"},
        analysis_words=tuple(d["analysis"]["words"]),
    )


def meta_role(key: str) -> str | None:
    """The role of an item metadata key written in either script, or ``None``."""
    folded = re.sub(r"\s", "", normalise(key))
    return patterns().meta_keys.get(folded)
