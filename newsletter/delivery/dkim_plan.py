"""What DKIM signing does once per compiled message, so that per recipient only the
slot values are hashed.

* The fixed headers are canonicalised; the per-recipient ones (``RECIPIENT_HEADERS``)
  are left as names to fill.
* The body is cut into lines. Lines without a slot are canonicalised once; lines that
  contain a slot keep their literal pieces, canonicalised on the assumption that the
  slot values are clean (:func:`.dkim_canon.is_clean`).
* The SHA-256 state of the canonical body up to the first line with a slot is computed
  once (SHA-256 is sequential: nothing after the first slot can be shared).

A body this cannot plan (one that does not end in fixed text) is marked ``fallback``:
the signer canonicalises it whole for each recipient.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from newsletter.delivery.assemble import ChunkJoiner
from newsletter.delivery.dkim_canon import WSP_RUN, canon_header, canon_line, split_header_block

__all__ = ["RECIPIENT_HEADERS", "Plan", "PlanLine", "make_plan"]

#: Headers that CompiledMessage.build writes per recipient (lower case).
RECIPIENT_HEADERS = frozenset({"to", "message-id", "date", "list-unsubscribe"})


@dataclass(slots=True)
class PlanLine:
    """A body line that contains at least one slot."""

    raw: tuple[bytes | str, ...]  # literal pieces and slot names, without CRLF
    canon: tuple[bytes | str, ...]  # canonical pieces, valid when every value is clean
    slots: frozenset[str]


@dataclass(slots=True)
class Plan:
    header_template: tuple[bytes | str, ...]  # canonical fixed fields / per-recipient names
    prefix: Any  # hashlib state after the shared prefix of the canonical body
    rest: tuple[bytes | PlanLine, ...]  # the remainder: canonical literal bytes or slot lines
    flat: ChunkJoiner  # the remainder flattened, for the all-clean fast path
    slots: frozenset[str]
    slot_values: Callable[[Mapping[str, bytes]], tuple[bytes, ...]]  # the values of ``slots``
    fallback: bool = False  # canonicalise the whole body per recipient


def make_plan(chunks: Sequence[bytes | str], signed: Sequence[str]) -> Plan:
    first = chunks[0]
    if not isinstance(first, bytes) or b"\r\n\r\n" not in first:
        raise ValueError("compiled message must start with its header block")
    block, _, body0 = first.partition(b"\r\n\r\n")
    fixed: dict[str, list[bytes]] = {}
    for fname, fvalue in split_header_block(block + b"\r\n"):
        fixed.setdefault(fname.strip().lower().decode(), []).append(canon_header(fname, fvalue))
    # Instances are chosen from the bottom up (RFC 6376 §5.4.2); build() puts the
    # per-recipient fields above the fixed ones.
    instances: dict[str, list[bytes | str]] = {}
    for name in set(signed):
        inst: list[bytes | str] = [name] if name in RECIPIENT_HEADERS else []
        inst.extend(fixed.get(name, []))
        instances[name] = inst
    template: list[bytes | str] = []
    for name in signed:
        inst = instances[name]
        if inst:
            template.append(inst.pop())
    # Body lines.
    items: list[bytes | str] = [body0, *chunks[1:]]
    lines: list[list[bytes | str]] = []
    cur: list[bytes | str] = []
    for item in items:
        if isinstance(item, str):
            cur.append(item)
            continue
        for i, seg in enumerate(item.split(b"\r\n")):
            if i:
                lines.append(cur)
                cur = []
            if seg:
                cur.append(seg)
    slots = frozenset(s for s in items if isinstance(s, str))
    last_is_fixed_text = (
        bool(lines) and all(isinstance(p, bytes) for p in lines[-1]) and any(p for p in lines[-1])
    )
    if cur or not last_is_fixed_text:
        return Plan(
            tuple(template), hashlib.sha256(), (), ChunkJoiner(()), slots, _values_of(slots), True
        )
    # Trailing empty lines are not hashed.
    while lines and not lines[-1]:
        lines.pop()
    prefix = hashlib.sha256()
    rest: list[bytes | PlanLine] = []
    for line in lines:
        if all(isinstance(p, bytes) for p in line):
            c = canon_line(b"".join(p for p in line if isinstance(p, bytes))) + b"\r\n"
            if rest:
                if isinstance(rest[-1], bytes):
                    rest[-1] += c
                else:
                    rest.append(c)
            else:
                prefix.update(c)
            continue
        canon: list[bytes | str] = [
            WSP_RUN.sub(b" ", p) if isinstance(p, bytes) else p for p in line
        ]
        if isinstance(canon[-1], bytes):
            canon[-1] = canon[-1].rstrip(b" \t")
        canon.append(b"\r\n")
        rest.append(
            PlanLine(tuple(line), tuple(canon), frozenset(p for p in line if isinstance(p, str)))
        )
    flat: list[bytes | str] = []
    for r in rest:
        for p in (r,) if isinstance(r, bytes) else r.canon:
            if isinstance(p, bytes) and flat and isinstance(flat[-1], bytes):
                flat[-1] += p
            elif p != b"":
                flat.append(p)
    return Plan(tuple(template), prefix, tuple(rest), ChunkJoiner(flat), slots, _values_of(slots))


def _values_of(slots: Iterable[str]) -> Callable[[Mapping[str, bytes]], tuple[bytes, ...]]:
    names = sorted(slots)
    if len(names) >= 2:
        return itemgetter(*names)
    return lambda values: tuple([values[n] for n in names])
