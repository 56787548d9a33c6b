"""Chinese numerals (一 … 九百九十九, with 〇/零 and the formal 壹贰叁), read and written."""

from __future__ import annotations

__all__ = ["NUMERAL_CHARS", "format_numeral", "parse_numeral"]

_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_DIGITS |= {"六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100}
NUMERAL_CHARS = "一二三四五六七八九十"
_FORMAL = str.maketrans("壹贰貳叁参參肆伍陆陸柒捌玖拾佰", "一二二三三三四五六六七八九十百")


def parse_numeral(s: str) -> int | None:
    """A Chinese numeral 1..999 → int (``十二``, ``二十``, ``一百零五``, ``贰拾``);
    ``None`` when ``s`` is not one written the usual way."""
    s = s.translate(_FORMAL)
    if not s or len(s) > 6 or any(ch not in _DIGITS and ch not in _UNITS for ch in s):
        return None
    if all(ch in _DIGITS for ch in s):  # a single digit (一 … 九); 〇 alone is not an ordinal
        return _DIGITS[s] or None if len(s) == 1 else None
    total, pending, last_unit, zero = 0, None, 1000, False
    for ch in s:
        if ch in _DIGITS:
            if pending is not None:  # two digits in a row: only 零 may stand between
                return None
            if _DIGITS[ch] == 0:
                zero = True
                continue
            pending = _DIGITS[ch]
            continue
        unit = _UNITS[ch]
        if unit >= last_unit or zero:
            return None
        if pending is None:
            if total or unit != 10:  # 十二 is fine, 百二 and 一百十 are not
                return None
            pending = 1
        total += pending * unit
        pending, last_unit = None, unit
    if pending is not None:
        if last_unit == 100 and not zero and pending:  # 一百五 means 150
            pending *= 10
        total += pending
    return total or None


def format_numeral(n: int) -> str:
    """int 1..999 → Chinese numeral (inverse of :func:`parse_numeral`)."""
    if not 1 <= n <= 999:
        raise ValueError(f"numeral out of range 1..999: {n}")
    names = "〇一二三四五六七八九"
    hundreds, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    out = names[hundreds] + "百" if hundreds else ""
    if tens:
        out += ("" if tens == 1 and not hundreds else names[tens]) + "十"
    elif hundreds and ones:
        out += "零"
    return out + (names[ones] if ones else "")
