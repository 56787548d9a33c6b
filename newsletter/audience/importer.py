"""Subscriber import: streamed, chunked, idempotent, with a per-row report.

Guarantees:

* Memory stays flat: rows are read as a stream and processed in chunks.
* Each chunk commits atomically. An interrupted import leaves only whole
  chunks behind, and re-running the same file converges to the same state
  (re-importing an unchanged file reports everything as ``unchanged``).
* Suppressed addresses and people who unsubscribed from the list are never
  resubscribed unless ``resubscribe=True``; that action is written to the audit log.
* Every rejected row appears in the error report (row number, value, reason).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import delete, insert, select, update

from ..db import session_scope
from ..models import Subscriber, Subscription, Suppression, utcnow
from .addresses import AddressError, address_hash, normalise
from .files import open_rows
from .service import audit, get_or_create_list

__all__ = ["ImportSummary", "RowError", "import_file", "normalise_variant"]

_VARIANTS = {
    "": "zh-Hans",
    "zh-hans": "zh-Hans",
    "zh-cn": "zh-Hans",
    "zh-sg": "zh-Hans",
    "hans": "zh-Hans",
    "简体": "zh-Hans",
    "简": "zh-Hans",
    "简体中文": "zh-Hans",
    "簡體": "zh-Hans",
    "zh-hant": "zh-Hant",
    "zh-tw": "zh-Hant",
    "zh-hk": "zh-Hant",
    "hant": "zh-Hant",
    "繁体": "zh-Hant",
    "繁體": "zh-Hant",
    "繁": "zh-Hant",
    "繁體中文": "zh-Hant",
    "繁体中文": "zh-Hant",
}


def normalise_variant(value: str) -> str | None:
    return _VARIANTS.get(value.strip().lower())


@dataclass(slots=True)
class RowError:
    row: int
    value: str
    reason: str


@dataclass(slots=True)
class ImportSummary:
    file: str
    encoding: str | None
    list_name: str
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    duplicate: int = 0
    suppressed: int = 0
    resubscribed: int = 0
    report_path: str | None = None
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["errors"] = len(self.errors)
        return d


@dataclass(slots=True)
class _Row:
    row: int
    email: str
    name: str
    variant: str
    attributes: dict[str, str]


def _parse(
    src_cols: dict[str, int],
    header_len: int,
    extras: list[tuple[str, int]],
    rows: Iterator[tuple[int, list[str]]],
    summary: ImportSummary,
    seen: dict[bytes, int],
) -> Iterator[_Row]:
    ei = src_cols["email"]
    ni = src_cols.get("name")
    vi = src_cols.get("variant")
    for n, cells in rows:
        if not cells or all(not c.strip() for c in cells):
            continue
        summary.rows += 1
        raw = cells[ei] if ei < len(cells) else ""
        if len(cells) != header_len:
            summary.invalid += 1
            summary.errors.append(
                RowError(
                    n,
                    ",".join(cells)[:200],
                    f"expected {header_len} columns, found {len(cells)} / 列数不符",
                )
            )
            continue
        try:
            email = normalise(raw)
        except AddressError as exc:
            summary.invalid += 1
            summary.errors.append(RowError(n, raw, str(exc)))
            continue
        key = hashlib.blake2b(email.encode(), digest_size=8).digest()
        if key in seen:
            summary.duplicate += 1
            summary.errors.append(RowError(n, raw, f"duplicate of row {seen[key]} / 重复行"))
            continue
        seen[key] = n
        variant = "zh-Hans"
        if vi is not None:
            v = normalise_variant(cells[vi])
            variant = v or "zh-Hans"
        yield _Row(
            n,
            email,
            (cells[ni].strip() if ni is not None else "")[:200],
            variant,
            {h.strip(): cells[i].strip() for h, i in extras if cells[i].strip()},
        )


def _chunks(it: Iterator[_Row], size: int) -> Iterator[list[_Row]]:
    chunk: list[_Row] = []
    for r in it:
        chunk.append(r)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_file(
    path: str | Path,
    list_name: str,
    *,
    resubscribe: bool = False,
    report_path: str | Path | None = None,
    actor: str = "cli",
    chunk_size: int = 1000,
    db_url: str | None = None,
) -> ImportSummary:
    path = Path(path)
    src, rows = open_rows(path)
    summary = ImportSummary(str(path), src.encoding, list_name)
    with session_scope(db_url) as s:
        list_id = get_or_create_list(s, list_name).id
    source = f"import:{path.name}"
    seen: dict[bytes, int] = {}
    parsed = _parse(src.columns, len(src.header), src.extras, rows, summary, seen)
    for chunk in _chunks(parsed, chunk_size):
        _apply_chunk(chunk, list_id, source, resubscribe, actor, summary, db_url)
    if report_path is None and summary.errors:
        report_path = path.with_name(path.stem + ".errors.csv")
    if report_path is not None:
        _write_report(Path(report_path), summary.errors)
        summary.report_path = str(report_path)
    with session_scope(db_url) as s:
        audit(
            s,
            actor,
            "subscribers.import",
            list_name,
            **{k: v for k, v in summary.as_dict().items() if k != "report_path"},
        )
    return summary


def _apply_chunk(
    chunk: list[_Row],
    list_id: int,
    source: str,
    resubscribe: bool,
    actor: str,
    summary: ImportSummary,
    db_url: str | None,
) -> None:
    emails = [r.email for r in chunk]
    now = utcnow()
    # Count into a local copy and publish only after the commit succeeds.
    counts = {"new": 0, "updated": 0, "unchanged": 0, "suppressed": 0, "resubscribed": 0}
    errors: list[RowError] = []
    with session_scope(db_url) as s:
        existing = {
            row.email: row
            for row in s.execute(
                select(
                    Subscriber.id,
                    Subscriber.email,
                    Subscriber.name,
                    Subscriber.variant,
                    Subscriber.attributes,
                    Subscriber.status,
                ).where(Subscriber.email.in_(emails))
            )
        }
        hashes = {address_hash(e): e for e in emails}
        suppressed = {
            hashes.get(row.email, row.email): row.reason
            for row in s.execute(
                select(Suppression.email, Suppression.reason).where(
                    Suppression.email.in_(emails + list(hashes))
                )
            )
        }
        new_rows = [r for r in chunk if r.email not in existing]
        if new_rows:
            s.execute(
                insert(Subscriber),
                [
                    {
                        "email": r.email,
                        "name": r.name,
                        "variant": r.variant,
                        "attributes": r.attributes,
                        "status": "active",
                        "source": source,
                        "created_at": now,
                        "updated_at": now,
                        "confirmed_at": now,
                    }
                    for r in new_rows
                ],
            )
            for row in s.execute(
                select(
                    Subscriber.id,
                    Subscriber.email,
                    Subscriber.name,
                    Subscriber.variant,
                    Subscriber.attributes,
                    Subscriber.status,
                ).where(Subscriber.email.in_([r.email for r in new_rows]))
            ):
                existing[row.email] = row
        ids = [existing[e].id for e in emails]
        subs = {
            row.subscriber_id: row.status
            for row in s.execute(
                select(Subscription.subscriber_id, Subscription.status).where(
                    Subscription.list_id == list_id, Subscription.subscriber_id.in_(ids)
                )
            )
        }
        new_ids = {existing[r.email].id for r in new_rows}
        to_subscribe: list[dict[str, object]] = []
        to_reactivate: list[int] = []
        for r in chunk:
            cur = existing[r.email]
            sid = cur.id
            if r.email in suppressed or subs.get(sid) == "unsubscribed" or cur.status != "active":
                if not resubscribe:
                    counts["suppressed"] += 1
                    why = (
                        f"suppressed ({suppressed[r.email]})"
                        if r.email in suppressed
                        else "unsubscribed from this list"
                        if subs.get(sid) == "unsubscribed"
                        else f"subscriber is {cur.status}"
                    )
                    errors.append(RowError(r.row, r.email, why + " / 已退订或被屏蔽，未重新订阅"))
                    continue
                counts["resubscribed"] += 1
                if r.email in suppressed:
                    s.execute(
                        delete(Suppression).where(
                            Suppression.email.in_([r.email, address_hash(r.email)])
                        )
                    )
                if cur.status == "blocked":
                    s.execute(
                        update(Subscriber).where(Subscriber.id == sid).values(status="active")
                    )
                audit(
                    s,
                    actor,
                    "subscribers.resubscribe",
                    r.email,
                    previous=suppressed.get(r.email) or subs.get(sid) or cur.status,
                )
            if sid in new_ids:
                counts["new"] += 1
            else:
                changed = (
                    (cur.name != r.name and r.name)
                    or cur.variant != r.variant
                    or (
                        r.attributes
                        and {**(cur.attributes or {}), **r.attributes} != cur.attributes
                    )
                )
                if changed:
                    s.execute(
                        update(Subscriber)
                        .where(Subscriber.id == sid)
                        .values(
                            name=r.name or cur.name,
                            variant=r.variant,
                            attributes={**(cur.attributes or {}), **r.attributes},
                            updated_at=now,
                        )
                    )
                    counts["updated"] += 1
                elif sid not in subs or subs[sid] != "active":
                    counts["updated"] += 1
                else:
                    counts["unchanged"] += 1
            if sid not in subs:
                to_subscribe.append(
                    {
                        "subscriber_id": sid,
                        "list_id": list_id,
                        "status": "active",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            elif subs[sid] != "active":
                to_reactivate.append(sid)
        if to_subscribe:
            s.execute(insert(Subscription), to_subscribe)
        if to_reactivate:
            s.execute(
                update(Subscription)
                .where(
                    Subscription.list_id == list_id, Subscription.subscriber_id.in_(to_reactivate)
                )
                .values(status="active", updated_at=now, unsubscribed_at=None, reason=None)
            )
    for k, v in counts.items():
        setattr(summary, k, getattr(summary, k) + v)
    summary.errors.extend(errors)


def _write_report(path: Path, errors: list[RowError]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "value", "reason"])
        for e in sorted(errors, key=lambda e: e.row):
            w.writerow([e.row, e.value, e.reason])
    tmp.replace(path)
