"""The brief's header, read from the shape of its first lines rather than from a template.

* A *token line* holds only an issue number, a period, a date and a weekday, in any order
  and with any separators: ``2026年12月1日 星期二 第228期``, ``Vol. 23 | December 1–7,
  2026``, ``第52期 · 2026年11月第4周``.  Every field it holds is read; none is lost.
* The *title* is, in order: the header line that carries a number or a period and words of
  its own (``产业政策周刊｜总第128期``); else the short line just above the first token
  line; else the first short line.  Short lines above the title are the masthead (the
  publisher's name, a ``Client Alert`` strap): they become the source.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from newsletter.content.lines import _format_period, _Line
from newsletter.content.pairs import DATE
from newsletter.content.patterns import Patterns, has_han, numeral_value

__all__ = ["choose_title", "header_tokens", "read_tokens"]

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec"
_EN_PERIOD = re.compile(
    rf"(?i)\b(?:{_MONTHS})[a-z]*\.?\s+\d{{1,2}}\s*[-–—~]\s*(?:(?:{_MONTHS})[a-z]*\.?\s+)?"
    r"\d{1,2},?\s+\d{4}"
)
_EN_DATE = re.compile(rf"(?i)\b(?:{_MONTHS})[a-z]*\.?\s+\d{{1,2}},?\s+\d{{4}}")
_CN_DATE = re.compile(DATE)
_WEEK_OF = re.compile(r"(?:\d{4}\s*年\s*)?(?<!\d)\d{1,2}\s*月\s*第\s*[一二三四五1-5]\s*周")
_MONTH = re.compile(r"\d{4}\s*年\s*\d{1,2}\s*月(?!\s*\d)")
_EN_MONTH = re.compile(rf"(?i)\b(?:{_MONTHS})[a-z]*\.?,?\s+\d{{4}}\b")
_WEEKDAY = re.compile(
    r"(?:星期|礼拜|周)[一二三四五六日天]|(?i:\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b)"
)
_TOTAL = re.compile(r"总\s*第?\s*\d{1,5}\s*期")
_SHORT_PERIOD = re.compile(
    r"(?<!\d)\d{1,2}\s*[./月]\s*\d{1,2}\s*日?\s*[-–—~至到]+\s*(?:\d{1,2}\s*[./月]\s*)?\d{1,2}\s*日?(?!\d)"
)
_WEEK_NUMBER = re.compile(r"第\s*\d{1,2}\s*周")
#: Words that only introduce a number (Issue No. 31): nothing of their own once it is read.
_NUMBER_WORDS = re.compile(r"(?i)\b(?:issue|vol(?:ume)?|no|number|nr)\b\.?")
_YEAR = re.compile(r"(?:\d{4}|[〇零一二三四五六七八九]{4})\s*年")
_CN_WORD_DATE = re.compile(
    r"[〇零一二三四五六七八九]{4}\s*年\s*[一二三四五六七八九十]{1,2}\s*月\s*[一二三四五六七八九十]{1,3}\s*日"
)


def _cut(s: str, m: re.Match[str]) -> str:
    """``s`` with the match blanked out (same length, so later spans still line up)."""
    return s[: m.start()] + " " * (m.end() - m.start()) + s[m.end() :]


def header_tokens(norm: str, p: Patterns) -> tuple[dict[str, Any], str]:
    """The header fields ``norm`` holds and the words left over (``""``: a token line)."""
    fields, rest, _ = read_tokens(norm, p)
    return fields, rest


def read_tokens(norm: str, p: Patterns) -> tuple[dict[str, Any], str, list[tuple[int, int]]]:
    """:func:`header_tokens` with the spans of ``norm`` the fields were read from."""
    fields: dict[str, Any] = {}
    spans: list[tuple[int, int]] = []
    s = norm

    def cut(m: re.Match[str]) -> None:
        nonlocal s
        spans.append(m.span())
        s = _cut(s, m)

    m = p.period.search(s)
    if m is not None:
        fields["period"] = _format_period(m)
        cut(m)
    for regex in (_EN_PERIOD, _WEEK_OF, _MONTH, _EN_MONTH, _SHORT_PERIOD):
        m = regex.search(s)
        if m is not None:  # 2026年11月 / November 2026: one period, twice
            fields.setdefault("period", norm[m.start() : m.end()].strip())
            cut(m)
    while (m := p.issue_number(s)) is not None:  # No. 11 | 第11期: one number, twice
        value = numeral_value(m.group("num"))
        if value is None:
            break
        fields.setdefault("number", value)
        cut(m)
    for regex in (_CN_DATE, _EN_DATE, _CN_WORD_DATE):
        m = regex.search(s)
        if m is not None:
            fields.setdefault("date", norm[m.start() : m.end()].strip())
            cut(m)
    if fields:
        for regex in (_TOTAL, _WEEKDAY, _WEEK_NUMBER, _YEAR, _NUMBER_WORDS):  # kept or implied
            while (m := regex.search(s)) is not None:
                cut(m)
    rest = re.sub(r"[\W_]+", " ", s).strip()
    return fields, rest, spans


def _words(rest: str) -> bool:
    """Whether ``rest`` has words of its own: English month and weekday names are a date's
    (``… / 20 April – 3 May 2026``), not a title's."""
    rest = _CALENDAR.sub("", rest)
    return len(re.sub(r"[\W\d_]", "", rest)) >= 2


_CALENDAR = re.compile(
    r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sept?|oct|nov|dec|mon|tue|wed|thu|fri|sat|sun)"
    r"[a-z]*\.?"
)


def choose_title(head: Sequence[_Line], p: Patterns) -> _Line | None:
    """The title line among ``head`` (the non-blank lines before the first heading)."""
    short = [
        ln
        for ln in head
        if len(ln.norm) <= p.heading_max
        and not p.sentence_end.search(ln.norm)
        and not re.match(r"^[^:：]{1,12}[:：]\s*\S", ln.norm)
    ]
    for ln in short:
        fields, rest = header_tokens(ln.norm, p)
        if ("number" in fields or "period" in fields) and _words(rest):
            return ln
    for i, ln in enumerate(head):
        fields, rest = header_tokens(ln.norm, p)
        if fields and not rest:
            above = [x for x in head[:i] if x in short]
            if len(above) > 1 and has_han(above[-2].norm) and not has_han(above[-1].norm):
                return above[-2]  # the title over its translation
            if above:
                return above[-1]
            break
    return short[0] if short else None
