"""DKIM relaxed canonicalisation (RFC 6376 §3.4.2, §3.4.4), and the test that lets the
signer canonicalise a line once for every recipient.

Relaxed body canonicalisation follows what verifiers implement: lines end at CRLF;
trailing spaces and tabs are removed from each line, other runs become one space, and
trailing empty lines are dropped. A slot value that is *clean* (non-empty, no CR/LF, no
leading, trailing or doubled whitespace) cannot interact with the whitespace around it,
so the canonical form of a filled line is the join of its canonical pieces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "UNFOLD",
    "WSP_RUN",
    "all_clean",
    "canon_body",
    "canon_header",
    "canon_line",
    "is_clean",
    "split_header_block",
]

WSP_RUN = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")
UNFOLD = re.compile(rb"\r?\n")


def canon_header(name: bytes, value: bytes) -> bytes:
    """Relaxed header canonicalisation of one field, with its CRLF."""
    v = WSP_RUN.sub(b" ", UNFOLD.sub(b"", value)).strip(b" \t")
    return name.strip().lower() + b":" + v + b"\r\n"


def canon_line(line: bytes) -> bytes:
    """Relaxed canonical form of one body line (without its CRLF)."""
    return WSP_RUN.sub(b" ", line.rstrip(b" \t"))


def canon_body(body: bytes) -> bytes:
    """Relaxed body canonicalisation of a whole body (the slow, general path)."""
    out = WSP_RUN.sub(b" ", _TRAILING_WSP.sub(b"\r\n", body))
    while out.endswith(b"\r\n\r\n"):
        out = out[:-2]
    if out == b"\r\n":
        return b""
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def is_clean(v: bytes) -> bool:
    """A slot value that cannot interact with the whitespace around it."""
    return (
        bool(v)
        and v[0] not in b" \t"
        and v[-1] not in b" \t"
        and b"\t" not in v
        and b"  " not in v
        and b"\r" not in v
        and b"\n" not in v
    )


# In the NUL-joined, NUL-framed values: a tab, CR or LF anywhere, a double space,
# a space next to a frame (leading or trailing) or an empty value.  A NUL inside
# a value can only cause a false "dirty", which takes the exact slow path.
_DIRTY = re.compile(rb"[\t\r\n]|  |\x00[ \x00]| \x00")


def all_clean(values: Sequence[bytes]) -> bool:
    """``all(is_clean(v) for v in values)`` in one regex search."""
    if not values:
        return True
    return _DIRTY.search(b"\x00" + b"\x00".join(values) + b"\x00") is None


_ts_cache: tuple[int, bytes] = (0, b"0")


def split_header_block(block: bytes) -> list[tuple[bytes, bytes]]:
    """(name, raw value) of each field of a CRLF header block; folded lines joined."""
    fields: list[tuple[bytes, bytes]] = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        if line[0] in b" \t" and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        else:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields
