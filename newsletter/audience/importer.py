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
import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.orm import Session

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
    seen: dict[int, int],
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
        key = hash(email)  # 64-bit; a collision among a million addresses is ~1e-8 likely
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
    chunk_size: int = 20000,
    db_url: str | None = None,
) -> ImportSummary:
    path = Path(path)
    src, rows = open_rows(path)
    summary = ImportSummary(str(path), src.encoding, list_name)
    with session_scope(db_url) as s:
        list_id = get_or_create_list(s, list_name).id
    source = f"import:{path.name}"
    seen: dict[int, int] = {}
    parsed = _parse(src.columns, len(src.header), src.extras, rows, summary, seen)
    # Parse the next chunk while the database applies the previous one.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import") as pool:
        pending: Future[None] | None = None
        for chunk in _chunks(parsed, chunk_size):
            if pending is not None:
                pending.result()
            pending = pool.submit(
                _apply_chunk, chunk, list_id, source, resubscribe, actor, summary, db_url
            )
        if pending is not None:
            pending.result()
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


_STAGE = "import_stage"


def _load_stage(s: Session, chunk: list[_Row]) -> None:
    """Put the chunk into a temporary staging table (COPY on PostgreSQL)."""
    pg = s.get_bind().dialect.name == "postgresql"
    s.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (row_no integer, email text, "
            "email_hash text, name text, variant text, attrs text)"
        )
    )
    s.execute(text(f"DELETE FROM {_STAGE}"))
    rows = [
        (
            r.row,
            r.email,
            address_hash(r.email),
            r.name,
            r.variant,
            json.dumps(r.attributes, ensure_ascii=False),
        )
        for r in chunk
    ]
    if pg:
        raw: Any = s.connection().connection.dbapi_connection
        assert raw is not None
        with (
            raw.cursor() as cur,
            cur.copy(
                f"COPY {_STAGE} (row_no, email, email_hash, name, variant, attrs) FROM STDIN"
            ) as cp,
        ):
            for row in rows:
                cp.write_row(row)
        s.execute(text(f"ANALYZE {_STAGE}"))
    else:
        s.execute(
            text(f"INSERT INTO {_STAGE} VALUES (:r, :e, :h, :n, :v, :a)"),
            [{"r": r[0], "e": r[1], "h": r[2], "n": r[3], "v": r[4], "a": r[5]} for r in rows],
        )


def _apply_chunk(
    chunk: list[_Row],
    list_id: int,
    source: str,
    resubscribe: bool,
    actor: str,
    summary: ImportSummary,
    db_url: str | None,
) -> None:
    """Apply one chunk with set-based SQL in one transaction (atomic, idempotent)."""
    now = utcnow()
    counts = {"new": 0, "updated": 0, "unchanged": 0, "suppressed": 0, "resubscribed": 0}
    errors: list[RowError] = []
    with session_scope(db_url) as s:
        pg = s.get_bind().dialect.name == "postgresql"
        _load_stage(s, chunk)
        # 1. People who must not be (re)subscribed: suppressed, blocked/erased, unsubscribed here.
        blocked = s.execute(
            text(f"""
            SELECT st.row_no, st.email, sp1.reason, sp2.reason, sb.status, su.status, sb.id
            FROM {_STAGE} st
            LEFT JOIN suppression sp1 ON sp1.email = st.email
            LEFT JOIN suppression sp2 ON sp2.email = st.email_hash
            LEFT JOIN subscriber sb ON sb.email = st.email
            LEFT JOIN subscription su ON su.subscriber_id = sb.id AND su.list_id = :list
            WHERE sp1.id IS NOT NULL OR sp2.id IS NOT NULL OR sb.status <> 'active'
               OR su.status = 'unsubscribed'
        """),
            {"list": list_id},
        ).all()
        if blocked and not resubscribe:
            for row_no, email, r1, r2, st_sb, _st_su, _sid in blocked:
                why = (
                    f"suppressed ({r1 or r2})"
                    if (r1 or r2)
                    else f"subscriber is {st_sb}"
                    if st_sb != "active"
                    else "unsubscribed from this list"
                )
                errors.append(RowError(row_no, email, why + " / 已退订或被屏蔽，未重新订阅"))
            counts["suppressed"] = len(blocked)
            s.execute(
                text(f"DELETE FROM {_STAGE} WHERE row_no IN :rows").bindparams(
                    bindparam("rows", expanding=True)
                ),
                {"rows": [b[0] for b in blocked]},
            )
        elif blocked:
            for _row_no, email, r1, r2, st_sb, st_su, sid in blocked:
                s.execute(
                    delete(Suppression).where(Suppression.email.in_([email, address_hash(email)]))
                )
                if sid is not None and st_sb == "blocked":
                    s.execute(
                        update(Subscriber).where(Subscriber.id == sid).values(status="active")
                    )
                if sid is not None and st_su == "unsubscribed":
                    s.execute(
                        update(Subscription)
                        .where(Subscription.subscriber_id == sid, Subscription.list_id == list_id)
                        .values(status="active", updated_at=now, unsubscribed_at=None, reason=None)
                    )
                audit(
                    s, actor, "subscribers.resubscribe", email, previous=r1 or r2 or st_su or st_sb
                )
            counts["resubscribed"] = len(blocked)
        staged = s.scalar(text(f"SELECT count(*) FROM {_STAGE}")) or 0
        # 2. New subscribers. On PostgreSQL one statement also joins them to the list and
        #    drops them from the stage, so the later steps only touch existing people.
        attrs_expr = "CAST(st.attrs AS jsonb)" if pg else "st.attrs"
        insert_new = f"""
            INSERT INTO subscriber (email, name, variant, attributes, status, source,
                                    created_at, updated_at, confirmed_at)
            SELECT st.email, st.name, st.variant, {attrs_expr}, 'active', :source,
                   :now, :now, :now
            FROM {_STAGE} st
            {"" if pg else "WHERE NOT EXISTS (SELECT 1 FROM subscriber x WHERE x.email = st.email)"}
            ON CONFLICT (email) DO NOTHING
            RETURNING id, email
        """
        params = {"source": source, "now": now, "list": list_id}
        if pg:
            cte = f"""
                WITH ins AS ({insert_new}),
                     sub AS (INSERT INTO subscription
                                 (subscriber_id, list_id, status, created_at, updated_at)
                             SELECT id, :list, 'active', :now, :now FROM ins),
                     gone AS (DELETE FROM {_STAGE} st USING ins WHERE st.email = ins.email)
                SELECT email FROM ins
            """
            new = list(s.execute(text(cte), params).scalars())
        else:
            new = [r[1] for r in s.execute(text(insert_new), params)]
        new_set = set(new)
        counts["new"] = len(new_set)

        # 3. Existing subscribers whose name, variant or attributes changed.
        if pg:
            changed = (
                s.execute(
                    text(f"""
                UPDATE subscriber sb SET
                    name = CASE WHEN st.name <> '' THEN st.name ELSE sb.name END,
                    variant = st.variant,
                    attributes = sb.attributes || CAST(st.attrs AS jsonb),
                    updated_at = :now
                FROM {_STAGE} st
                WHERE sb.email = st.email AND sb.status = 'active' AND (
                    (st.name <> '' AND st.name <> sb.name) OR st.variant <> sb.variant
                    OR NOT (sb.attributes @> CAST(st.attrs AS jsonb)))
                RETURNING sb.email
            """),
                    {"now": now},
                )
                .scalars()
                .all()
            )
        else:
            changed = (
                s.execute(
                    text(f"""
                UPDATE subscriber SET
                    name = CASE WHEN st.name <> '' THEN st.name ELSE subscriber.name END,
                    variant = st.variant,
                    attributes = json_patch(subscriber.attributes, st.attrs),
                    updated_at = :now
                FROM {_STAGE} st
                WHERE subscriber.email = st.email AND subscriber.status = 'active' AND (
                    (st.name <> '' AND st.name <> subscriber.name)
                    OR st.variant <> subscriber.variant
                    OR json_patch(subscriber.attributes, st.attrs)
                       <> json(subscriber.attributes))
                RETURNING subscriber.email
            """),
                    {"now": now},
                )
                .scalars()
                .all()
            )
        updated = set(changed) - new_set
        # 4. Memberships: add to the list, or activate an unconfirmed one (consent asserted).
        joined = (
            s.execute(
                text(f"""
            INSERT INTO subscription (subscriber_id, list_id, status, created_at, updated_at)
            SELECT sb.id, :list, 'active', :now, :now
            FROM {_STAGE} st JOIN subscriber sb ON sb.email = st.email
            WHERE sb.status = 'active'
            ON CONFLICT (subscriber_id, list_id) DO NOTHING
            RETURNING subscriber_id
        """),
                {"list": list_id, "now": now},
            )
            .scalars()
            .all()
        )
        activated = (
            s.execute(
                text(f"""
            UPDATE subscription SET status = 'active', updated_at = :now
            WHERE list_id = :list AND status = 'unconfirmed' AND subscriber_id IN (
                SELECT sb.id FROM {_STAGE} st JOIN subscriber sb ON sb.email = st.email)
            RETURNING subscriber_id
        """),
                {"list": list_id, "now": now},
            )
            .scalars()
            .all()
        )
        touched = set(joined) | set(activated)
        if touched:
            emails = set(
                s.scalars(select(Subscriber.email).where(Subscriber.id.in_(list(touched))))
            )
            updated |= emails - new_set
        counts["updated"] = len(updated)
        counts["unchanged"] = staged - counts["new"] - counts["updated"]
        s.execute(text(f"DELETE FROM {_STAGE}"))
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
