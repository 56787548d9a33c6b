"""``key：value`` fields as people type them: several on one line, and Latin keys.

``发文机关：国务院　文号：国发〔2026〕30号　日期：2026年11月24日`` holds three fields; so
do the same with ``；`` or `` | `` between them.  A line is split only when every key it
would split at is a field name of the importer's vocabulary (a role), so prose that
happens to hold a colon is never cut.  ``Issuer:``, ``Ref No.:`` and ``Link:`` are read
like their Chinese counterparts.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["ANY_KV", "DATE", "LATIN_KV", "as_written", "key_text", "role_in", "split_pairs"]

#: One field: a short key (CJK, or Latin words), a colon, then the value.
_KEY_AT = re.compile(
    r"(?:^|(?<=[\s;；|｜,，、]))\s*(?P<key>[\u4e00-\u9fff]{2,8}|[A-Za-z][A-Za-z .']{0,18}?)\s*[:：]"
)
#: A whole line that is a Latin-keyed field (``Ref No.: 银发〔2026〕211号``).
LATIN_KV = re.compile(r"^(?P<key>[A-Za-z][A-Za-z .']{0,18}?)\s*:\s*(?P<value>\S.*)$")
_SEPARATORS = " \t\u3000;；|｜,，、"
#: Any short key before a colon, Chinese, Latin or both (``发文机关 Issuing Authority：``).
ANY_KV = re.compile(r"^(?P<key>[^:：\s][^:：]{0,29}?)\s*[:：]\s*(?P<value>.*)$")


def role_in(table: dict[str, str], key: str) -> str | None:
    """The role of ``key`` in a synonym table, trying the key whole, then its Chinese
    words, then its Latin words (a bilingual key names the same field twice)."""
    tries = [
        re.sub(r"\s", "", key),
        re.sub(r"[\s.]+", " ", key).strip().lower(),
        "".join(re.findall(r"[\u4e00-\u9fff]+", key)),
        " ".join(re.findall(r"[A-Za-z]+", key)).lower(),
    ]
    for k in tries:
        if k and k in table:
            return table[k]
    return None


#: One field in brackets: 「发文机关｜国务院」, 【文号：国发〔2026〕12号】.
_BRACKETED = re.compile(
    r"[「『【\[]\s*(?P<key>[\u4e00-\u9fff]{2,8})\s*[｜|:：]\s*(?P<value>[^」』】\]]+?)\s*[」』】\]]"
)


def _bracketed(norm: str, role_of: Callable[[str], str | None]) -> list[tuple[str, int, int]]:
    """A line made only of bracketed fields, every key a known one (two or more)."""
    found = list(_BRACKETED.finditer(norm))
    rest = _BRACKETED.sub("", norm).strip(_SEPARATORS)
    if len(found) < 2 or rest or any(role_of(m.group("key")) is None for m in found):
        return []
    return [(m.group("key"), m.start("value"), m.end("value")) for m in found]


#: ``【文号】``: a key in brackets, its value after it
_KEY_BRACKET = re.compile(r"【\s*(?P<key>[\u4e00-\u9fff]{2,8})\s*】")


def _keys_in_brackets(
    norm: str, role_of: Callable[[str], str | None]
) -> list[tuple[str, int, int]]:
    """``【文号】国发〔2026〕8号　【日期】2026年3月1日``: two or more known keys in brackets on
    one line, the first at its start, each value running to the next key."""
    found = [(m.group("key"), m.start(), m.end()) for m in _KEY_BRACKET.finditer(norm)]
    if any(role_of(key) is None for key, _, _ in found):
        return []
    return _values(norm, found)


def _values(norm: str, found: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """``(key, value start, value end)`` of each key found (``(key, key start, value
    start)``, in order), each value running to the next key; ``[]`` unless there are two
    or more, the first at the start of the line, and no value is empty."""
    if len(found) < 2 or found[0][1] != len(norm) - len(norm.lstrip()):
        return []
    out = []
    for (key, _k, start), nxt in zip(found, [*found[1:], None], strict=True):
        end = nxt[1] if nxt is not None else len(norm)
        while end > start and norm[end - 1] in _SEPARATORS:
            end -= 1
        while start < end and norm[start] == " ":
            start += 1
        if start >= end:
            return []  # an empty value: not a row of fields
        out.append((key, start, end))
    return out


def split_pairs(norm: str, role_of: Callable[[str], str | None]) -> list[tuple[str, int, int]]:
    """``[(key, value start, value end)]`` when ``norm`` holds two or more known fields
    side by side, the first at the start of the line (``key：value`` separated, or each in
    brackets); else ``[]``."""
    bracketed = _bracketed(norm, role_of) or _keys_in_brackets(norm, role_of)
    if bracketed:
        return bracketed
    found = []
    for m in _KEY_AT.finditer(norm):
        key = re.sub(r"\s", "", m.group("key"))
        if role_of(key) is None:
            continue
        found.append((key, m.start("key"), m.end()))
    return _values(norm, found)


_DOC_NUMBER = re.compile(
    r"[〔\[(（]\d{4}[〕\])）]\s*\d{1,5}\s*号|令第\s*\d+\s*号|公告\s*\d{4}\s*年第\s*\d+\s*号|第\s*\d+\s*号$"
)
#: A date as briefs write it: 2026年11月24日, 2026-11-24, 2026.11.24 (one pattern for the
#: header, the field rows and a date closing an item title).
DATE = r"\d{4}\s*(?:年\s*\d{1,2}\s*月\s*\d{1,2}\s*日|[-./]\d{1,2}[-./]\d{1,2})"
_DATE = re.compile(rf"^{DATE}$")
_URL = re.compile(r"^https?://\S+$")
#: Default names of the fields a row of bare values holds, by role.
FIELD_NAMES = {"issuer": "发文机关", "doc_number": "文号", "date": "日期", "url": "链接"}


def fields_by_shape(
    norm: str, seps: str = "|｜", shaped_min: int = 1
) -> list[tuple[str, int, int]]:
    """``国务院 | 国发〔2026〕12号 | 2026-11-20``: values with no keys, told apart by their
    shape (a document number, a date, an address; the one name among them the issuer).
    ``[(role, start, end)]`` when at least two are recognised (and ``shaped_min`` of them
    by their shape, not their place), else ``[]``. ``seps``: what separates the values."""
    cells = [(m.start(), m.end()) for m in re.finditer(f"[^{re.escape(seps)}]+", norm)]
    if len(cells) < 2 or len(cells) > 5:
        return []
    out: list[tuple[str, int, int]] = []
    for a, b in cells:
        while a < b and norm[a] == " ":
            a += 1
        while b > a and norm[b - 1] == " ":
            b -= 1
        value = norm[a:b]
        role = (
            "url" if _URL.match(value)
            else "date" if _DATE.match(value)
            else "doc_number" if _DOC_NUMBER.search(value)
            else "issuer" if 2 <= len(value) <= 30 and not re.search(r"[:。]", value)
            else None
        )  # fmt: skip
        if role is None or any(r == role for r, _, _ in out):
            return []
        out.append((role, a, b))
    shaped = sum(1 for r, _, _ in out if r != "issuer")
    if shaped < shaped_min:
        return []
    return out if shaped >= 2 or (shaped == 1 and len(out) == 2) else []


def as_written(key: str, norm: str, text: str, before: int) -> str:
    """A field name as the document writes it (發文機關, not the 发文机关 it was matched as):
    the same span of ``text``, which lines up with ``norm`` character for character."""
    at = norm.rfind(key, 0, before)
    return text[at : at + len(key)] if at >= 0 and len(text) == len(norm) else key


def key_text(key: str) -> str:
    """A field name as written: Chinese without the spaces typed inside it, Latin words
    (``Issuing Authority``) with one space between them."""
    if re.search(r"[A-Za-z]", key):
        return re.sub(r"\s+", " ", key).strip()
    return re.sub(r"\s", "", key)
