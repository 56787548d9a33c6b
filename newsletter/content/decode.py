"""Bytes to text: a brief arrives as UTF-8 (with or without BOM), GB18030, Big5 or UTF-16, from
a file or an upload that says nothing of its encoding. Strict decoders are tried first; when
several succeed, the one whose text reads most like Chinese prose wins (common characters,
CJK punctuation). Anything else is refused with one line that says where it broke."""

from __future__ import annotations

import re

import charset_normalizer

from newsletter.core.catalogue import coded, message
from newsletter.core.errors import IssueFormatError

_FALLBACKS = ("gb18030", "big5")


_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ue000-\uf8ff\ufffd]")


#: C0 control bytes that no text file holds (tab, newlines, form feed and escape do occur)
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27)) + b"\x7f"


def _binary(data: bytes) -> bool:
    """More than a stray control byte per hundred: a binary file, not text."""
    sample = data[:65536]
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return controls > max(2, len(sample) // 100)


def _strict(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _sensible(text: str) -> bool:
    """Reject decodings full of control or private-use characters."""
    return len(_BAD_CHARS.findall(text)) <= max(2, len(text) // 1000)


_PUNCT = set("，。、；：？！“”‘’（）《》〈〉【】〔〕「」『』—…·％　")


def _in_gb2312(ch: str) -> bool:
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _in_big5_level1(ch: str) -> bool:
    try:
        code = int.from_bytes(ch.encode("big5"), "big")
    except UnicodeEncodeError:
        return False
    return 0xA440 <= code <= 0xC67E


def _score(text: str) -> float:
    """How much ``text`` looks like ordinary Chinese in *one* script.

    The share of non-ASCII characters that are punctuation or frequent hanzi
    of a single repertoire (GB2312 for simplified, Big5 level 1 for
    traditional), taking the better of the two.  A wrong decoding produces a
    scatter of rare or mixed characters and scores lower.
    """
    wide = [ch for ch in text if not ch.isascii()]
    if not wide:
        return 1.0
    punct = [ch in _PUNCT or "\uff01" <= ch <= "\uff5e" for ch in wide]
    hanzi = ["\u4e00" <= ch <= "\u9fff" for ch in wide]
    gb = sum(p or (h and _in_gb2312(ch)) for p, h, ch in zip(punct, hanzi, wide, strict=True))
    b5 = sum(p or (h and _in_big5_level1(ch)) for p, h, ch in zip(punct, hanzi, wide, strict=True))
    return max(gb, b5) / len(wide)


def _choose(data: bytes, decoded: dict[str, str]) -> str:
    """Pick the encoding whose decoding looks most like ordinary Chinese text."""
    if len(decoded) == 1:
        return next(iter(decoded))
    scores = {enc: _score(text) for enc, text in decoded.items()}
    ranked = sorted(scores, key=lambda e: scores[e], reverse=True)
    if scores[ranked[0]] - scores[ranked[1]] > 0.02:
        return ranked[0]
    best = charset_normalizer.from_bytes(data, cp_isolation=list(decoded)).best()
    if best is not None:
        name = best.encoding.replace("_", "").lower()
        for enc in decoded:
            if enc.replace("_", "") == name:
                return enc
    return ranked[0]


def decode_source(data: bytes, *, path: str | None = None) -> tuple[str, list[str]]:
    """Decode issue bytes → ``(text, warnings)``.

    UTF-8 with or without BOM, and UTF-16 with a BOM, decode silently.
    Otherwise GB18030 and Big5 (or its CP950 / Big5-HKSCS supersets) are tried (charset-normalizer picks when both decode) and the warning names
    the encoding used.  When nothing decodes sensibly, raises
    :class:`IssueFormatError`: for text, naming the line and offset of the first byte
    that is not UTF-8; for binary data, saying it is not text at all.
    """
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8"), []
    except UnicodeDecodeError as exc:
        first_bad = exc.start + bom
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text16 = _strict(data, "utf-16")
        if text16 is not None:
            return text16, []
    decoded = {
        enc: text
        for enc in _FALLBACKS
        if (text := _strict(data, enc)) is not None and _sensible(text)
    }
    if "big5" not in decoded:  # Windows (CP950, e.g. 恒 at 0xF9DA) and Hong Kong extensions
        for enc in ("cp950", "big5hkscs"):
            if (text := _strict(data, enc)) is not None and _sensible(text):
                decoded[enc] = text
                break
    if not decoded:
        if _binary(data):
            # control bytes throughout: not text in any encoding, so "save as UTF-8" would mislead
            raise coded(
                IssueFormatError,
                "import.not_brief",
                where={"path": path},
                kind_zh="二进制文件",
                kind_en="a binary file",
            )
        raise coded(
            IssueFormatError,
            "import.bad_encoding",
            where={"line": data.count(b"\n", 0, first_bad) + 1, "path": path},
            byte=f"0x{data[first_bad]:02x}",
            offset=first_bad,
        )
    enc = _choose(data, decoded)
    label = {"gb18030": "GB18030", "big5": "Big5", "cp950": "CP950", "big5hkscs": "Big5-HKSCS"}[enc]
    note = message("import.decoded", label=label).line()
    return decoded[enc], [f"{path}: {note}" if path else note]
