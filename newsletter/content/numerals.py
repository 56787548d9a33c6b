"""Chinese section numerals (一 … 九十九), read and written."""

from __future__ import annotations

__all__ = ["NUMERAL_CHARS", "format_numeral", "parse_numeral"]

_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
NUMERAL_CHARS = "一二三四五六七八九十"


def parse_numeral(s: str) -> int | None:
    """Chinese numeral 一..九十九 → int; ``None`` when ``s`` is not one."""
    if len(s) == 1 and s in _DIGITS:
        return _DIGITS[s]
    if "十" not in s or s.count("十") != 1 or len(s) > 3:
        return None
    tens, _, ones = s.partition("十")
    t = 1 if tens == "" else _DIGITS.get(tens)
    o = 0 if ones == "" else _DIGITS.get(ones)
    if t is None or o is None:
        return None
    return t * 10 + o


def format_numeral(n: int) -> str:
    """int 1..99 → Chinese numeral (inverse of :func:`parse_numeral`)."""
    if not 1 <= n <= 99:
        raise ValueError(f"numeral out of range 1..99: {n}")
    names = {v: k for k, v in _DIGITS.items()}
    if n < 10:
        return names[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else names[tens]) + "十" + (names[ones] if ones else "")
