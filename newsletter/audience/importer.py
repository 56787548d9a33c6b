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

import datetime as dt
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from json.encoder import encode_basestring as _json_str  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from psycopg import errors as psycopg_errors
from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.audience.addresses import AddressError, address_hash, normalise
from newsletter.audience.files import SourceFile, open_rows
from newsletter.audience.service import get_or_create_list
from newsletter.core.audit import audit
from newsletter.core.db import session_scope
from newsletter.core.errors import ImportFileError
from newsletter.core.safety.csvsafe import keep_neutralised
from newsletter.core.safety.csvsafe import writer as csv_writer
from newsletter.core.safety.headers import clean_text
from newsletter.models import Subscriber, Subscription, Suppression, utcnow

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
    "繁体字": "zh-Hant",
    "繁體字": "zh-Hant",
    "正體": "zh-Hant",
    "traditional": "zh-Hant",
    "tc": "zh-Hant",
    "简体字": "zh-Hans",
    "簡體字": "zh-Hans",
    "簡体": "zh-Hans",
    "simplified": "zh-Hans",
    "sc": "zh-Hans",
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
class _Chunk:
    """Rows ready for the database.  On SQLite ``items`` are tuples (file row, email,
    name, variant, attributes as JSON text); on PostgreSQL they are the last four as
    COPY text, with the file rows in ``rows``.  ``lookup``: may the database already
    know one of these addresses?"""

    items: list[Any]
    rows: list[int]
    lookup: bool
    #: File rows read up to the end of this chunk (valid or not), for progress reports.
    read: int = 0


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: str) -> str:
    """Escape a value for PostgreSQL's COPY text format (rarely needed: checked first)."""
    return value.translate(_COPY_ESCAPES)


class _Known:
    """The addresses the database already holds (subscribers and suppressions), as of
    the start of the import, kept as 64-bit hashes (~60 MB per million).

    A chunk made only of addresses unknown here needs no per-row look-up at all: it
    is inserted directly, and the unique index on ``subscriber.email`` still catches
    anything a concurrent writer added meanwhile (the chunk is then re-applied with
    full conflict handling).  Above ``limit`` known addresses every chunk is looked up.
    """

    def __init__(self, db_url: str | None, limit: int = 2_000_000) -> None:
        self.hashes: set[int] | None = None
        self.erased: set[str] = set()
        with session_scope(db_url) as s:
            n = (s.scalar(text("SELECT count(*) FROM subscriber")) or 0) + (
                s.scalar(text("SELECT count(*) FROM suppression")) or 0
            )
            if n > limit:
                return
            hashes: set[int] = set()
            for (email,) in s.execute(text("SELECT email FROM subscriber")).yield_per(20000):
                hashes.add(hash(email))
            for (email,) in s.execute(text("SELECT email FROM suppression")):
                if email.startswith("sha256:"):
                    self.erased.add(email)
                else:
                    hashes.add(hash(email))
            self.hashes = hashes

    @property
    def nothing(self) -> bool:
        """The database held no address at all (a first import)."""
        return self.hashes is not None and not self.hashes and not self.erased

    def knows(self, email: str) -> bool:
        if self.hashes is None or hash(email) in self.hashes:
            return True
        return bool(self.erased) and address_hash(email) in self.erased


def _parse(
    src: SourceFile,
    rows: Iterator[tuple[int, list[str]]],
    summary: ImportSummary,
    seen: dict[int, int],
    size: int,
    *,
    copy_text: bool,
    known: _Known | None,
) -> Iterator[_Chunk]:
    """Validate, normalise and de-duplicate rows; record rejects in ``summary``.

    Yields chunks of at most ``size`` staged rows, each with a flag: does it hold an
    address the database may already know (so that it needs look-ups)?  This loop
    runs once per row of files with millions of rows, so it stays lean: attributes'
    JSON is assembled from pre-encoded keys, counters are local, and on PostgreSQL
    each row is formatted straight into COPY text.
    """
    header_len = len(src.header)
    ei = src.columns["email"]
    ni = src.columns.get("name")
    vi = src.columns.get("variant")
    extras = [(_json_str(h.strip()) + ": ", i) for h, i in src.extras]
    one_extra = ("{" + extras[0][0], extras[0][1]) if len(extras) == 1 else None
    enc = _json_str
    variants = _VARIANTS
    errors = summary.errors
    # Every chunk is looked up on SQLite, or when too many addresses are known to hold
    # here; otherwise only chunks holding an address ``knows`` recognises (none at all
    # when the database held nobody).
    always = known is None or known.hashes is None
    knows = None if known is None or always or known.nothing else known.knows
    count = invalid = duplicate = 0
    chunk: list[Any] = []
    nums: list[int] = []
    lookup = always
    try:
        for n, cells in rows:
            if len(cells) != header_len or not cells[ei].strip():
                if not cells or all(not c.strip() for c in cells):
                    continue  # blank lines are not rows
                if len(cells) != header_len:
                    count += 1
                    invalid += 1
                    errors.append(
                        RowError(
                            n,
                            ",".join(cells)[:200],
                            f"expected {header_len} columns, found {len(cells)} / 列数不符",
                        )
                    )
                    continue
            count += 1
            raw = cells[ei]
            try:
                email = normalise(raw)
            except AddressError as exc:
                invalid += 1
                errors.append(RowError(n, raw, str(exc)))
                continue
            # 64-bit key: a collision among a million addresses is ~1e-8 likely.
            first = seen.setdefault(hash(email), n)
            if first != n:
                duplicate += 1
                errors.append(RowError(n, raw, f"duplicate of row {first} / 重复行"))
                continue
            variant = (
                variants.get(cells[vi].strip().lower(), "zh-Hans") if vi is not None else "zh-Hans"
            )
            # Header-bound: one line, no controls (F3); a cell protected against formulas
            # ('=…, or a tab before =) stays protected after stripping.
            name = keep_neutralised(cells[ni], clean_text(cells[ni], 200)) if ni is not None else ""
            attrs = "{}"
            if one_extra is not None:
                v = cells[one_extra[1]].strip()
                if v:
                    attrs = one_extra[0] + enc(v) + "}"
            elif extras:
                parts = [k + enc(v) for k, i in extras if (v := cells[i].strip())]
                if parts:
                    attrs = "{" + ", ".join(parts) + "}"
            if not lookup and knows is not None and knows(email):
                lookup = True
            if copy_text:
                if "\\" in name or not name.isprintable():
                    name = _copy_field(name)
                if "\\" in attrs:
                    attrs = _copy_field(attrs)
                nums.append(n)
                chunk.append(f"{email}\t{name}\t{variant}\t{attrs}")
            else:
                chunk.append((n, email, name, variant, attrs))
            if len(chunk) >= size:
                yield _Chunk(chunk, nums, lookup, count)
                chunk = []
                nums = []
                lookup = always
        if chunk:
            yield _Chunk(chunk, nums, lookup, count)
    finally:
        summary.rows += count
        summary.invalid += invalid
        summary.duplicate += duplicate


def import_file(
    path: str | Path,
    list_name: str,
    *,
    resubscribe: bool = False,
    report_path: str | Path | None = None,
    actor: str = "cli",
    chunk_size: int = 20000,
    db_url: str | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import ``path`` into the list ``list_name`` (created if missing).

    The file is parsed on this thread while ``workers`` database connections
    (two on PostgreSQL, one on SQLite) apply the chunks, each chunk in its own
    transaction.  Chunks never share an address (duplicates are removed before
    they are staged), so they commute: their order of commit does not matter.
    ``progress`` is called with the number of file rows read after each chunk is
    committed (a background job writes it to its row).
    """
    path = Path(path)
    if report_path is not None:
        _probe_writable(Path(report_path))  # before anything is committed
    src, rows = open_rows(path)
    summary = ImportSummary(str(path), src.encoding, list_name)
    with session_scope(db_url) as s:
        list_id = get_or_create_list(s, list_name).id
        pg = s.get_bind().dialect.name == "postgresql"
    if workers is None:
        workers = 2 if pg else 1
    applier = _Applier(list_id, f"import:{path.name}", resubscribe, actor, summary, db_url, pg)
    seen: dict[int, int] = {}
    parsed = _parse(
        src,
        rows,
        summary,
        seen,
        chunk_size,
        copy_text=pg,
        known=_Known(db_url) if pg else None,
    )
    # Parse the next chunks while the database applies earlier ones; at most
    # ``workers`` chunks are in flight, so memory stays bounded.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="import") as pool:
        pending: deque[tuple[Future[None], int]] = deque()

        def settle() -> None:
            future, read = pending.popleft()
            future.result()
            if progress is not None:
                progress(read)

        try:
            for chunk in parsed:
                while len(pending) >= workers:
                    settle()
                pending.append((pool.submit(applier.apply, chunk), chunk.read))
            while pending:
                settle()
        finally:
            for f, _read in pending:
                f.cancel()
    seen.clear()
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
_COLS = "row_no, email, name, variant, attrs"
#: The value kept in the suppression list after erasure (see addresses.address_hash), in SQL.
_PG_HASH = "'sha256:' || encode(sha256(convert_to(st.email, 'UTF8')), 'hex')"


class _Applier:
    """Applies chunks with set-based SQL, one transaction per chunk (atomic, idempotent)."""

    def __init__(
        self,
        list_id: int,
        source: str,
        resubscribe: bool,
        actor: str,
        summary: ImportSummary,
        db_url: str | None,
        pg: bool,
    ) -> None:
        self.list_id = list_id
        self.source = source
        self.resubscribe = resubscribe
        self.actor = actor
        self.summary = summary
        self.db_url = db_url
        self.pg = pg
        self._lock = threading.Lock()
        self._sequence: str | None = None

    def apply(self, chunk: _Chunk) -> None:
        try:
            counts, errors = self._apply(chunk, racing=False)
        except (IntegrityError, psycopg_errors.IntegrityError):
            # Another writer (a subscribe form, a second import) added one of these
            # addresses between our check and our insert: the chunk was rolled back;
            # apply it again with conflict handling.
            counts, errors = self._apply(chunk, racing=True)
        with self._lock:
            for k, v in counts.items():
                setattr(self.summary, k, getattr(self.summary, k) + v)
            self.summary.errors.extend(errors)

    def _load(self, s: Session, chunk: _Chunk) -> None:
        if self.pg:
            s.execute(
                text(
                    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (row_no integer, email text, "
                    "name text, variant text, attrs text, sid bigint, sb_status text) "
                    "ON COMMIT DELETE ROWS"
                )
            )
            raw: Any = s.connection().connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cur, cur.copy(f"COPY {_STAGE} ({_COLS}) FROM STDIN") as cp:
                cp.write(
                    "".join([f"{n}\t{x}\n" for n, x in zip(chunk.rows, chunk.items, strict=True)])
                )
            return
        s.execute(
            text(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (row_no integer, email text, "
                "email_hash text, name text, variant text, attrs text)"
            )
        )
        s.execute(text(f"DELETE FROM {_STAGE}"))
        s.execute(
            text(f"INSERT INTO {_STAGE} VALUES (:r, :e, :h, :n, :v, :a)"),
            [
                {"r": r, "e": e, "h": address_hash(e), "n": n, "v": v, "a": a}
                for r, e, n, v, a in chunk.items
            ],
        )

    def _apply(self, chunk: _Chunk, *, racing: bool) -> tuple[dict[str, int], list[RowError]]:
        counts = {"new": 0, "updated": 0, "unchanged": 0, "suppressed": 0, "resubscribed": 0}
        errors: list[RowError] = []
        with session_scope(self.db_url) as s:
            if self.pg:
                # A chunk's commit need not wait for its WAL to reach disk: the import's
                # final (synchronous) commit, its audit entry, flushes all of it before
                # import_file returns, and a crash before then is an interruption that
                # re-running converges from.
                s.execute(text("SET LOCAL synchronous_commit = off"))
            if self.pg and not racing and not chunk.lookup:
                counts["new"] = self._copy_new(s, chunk)
                return counts, errors
            self._load(s, chunk)
            if self.pg and not racing:
                self._apply_pg(s, chunk, counts, errors)
            else:
                self._apply_portable(s, chunk, counts, errors)
        return counts, errors

    def _copy_new(self, s: Session, chunk: _Chunk) -> int:
        """PostgreSQL, a chunk of addresses the database did not know: COPY them straight
        into ``subscriber`` and ``subscription``, with ids drawn from the sequence.

        Every column is supplied, so PostgreSQL can batch the rows into pages
        (``heap_multi_insert``) instead of inserting them one by one.  Should a
        concurrent writer have added one of the addresses meanwhile, the unique index
        refuses the COPY and ``apply`` re-runs the chunk with conflict handling.
        """
        n = len(chunk.items)
        if self._sequence is None:
            name = s.scalar(text("SELECT pg_get_serial_sequence('subscriber', 'id')"))
            self._sequence = str(name).replace("'", "''")
        # As text, ready for COPY: no per-id Python object on the way.
        ids = str(
            s.scalar(
                text(
                    f"SELECT string_agg(nextval('{self._sequence}')::text, ',') "
                    "FROM generate_series(1, :n)"
                ),
                {"n": n},
            )
        ).split(",")
        now = utcnow().isoformat()
        source = _copy_field(self.source)
        tail = f"\tactive\t{source}\t{now}\t{now}\t{now}\n"
        member = f"\t{self.list_id}\tactive\t{now}\t{now}\n"
        raw: Any = s.connection().connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cur:
            with cur.copy(
                "COPY subscriber (id, email, name, variant, attributes, status, source, "
                "created_at, updated_at, confirmed_at) FROM STDIN"
            ) as cp:
                cp.write(
                    "".join([f"{i}\t{x}{tail}" for i, x in zip(ids, chunk.items, strict=True)])
                )
            with cur.copy(
                "COPY subscription (subscriber_id, list_id, status, created_at, updated_at) "
                "FROM STDIN"
            ) as cp:
                cp.write("".join([f"{i}{member}" for i in ids]))
        return n

    def _blocked(
        self, s: Session, sql: str, counts: dict[str, int], errors: list[RowError], now: dt.datetime
    ) -> None:
        """Step 1: people who must not be (re)subscribed: suppressed, blocked or erased,
        or unsubscribed from this list.  Without ``--resubscribe`` they leave the stage."""
        blocked = s.execute(text(sql), {"list": self.list_id}).all()
        if blocked and not self.resubscribe:
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
            self._resubscribe(s, blocked, now)
            counts["resubscribed"] = len(blocked)

    def _apply_pg(
        self,
        s: Session,
        chunk: _Chunk,
        counts: dict[str, int],
        errors: list[RowError],
    ) -> None:
        """PostgreSQL.  A chunk with no address known before the import (see ``_Known``)
        goes straight to the insert.  Otherwise each address is looked up once, by index.

        The import itself grows ``subscriber`` tenfold or more, so its statistics go
        stale within one run, and the planner then prefers hashing the whole table for
        every 20,000-row chunk.  Hash and merge joins are therefore switched off for the
        look-ups against ``subscriber``: they are stage-driven index probes.
        """
        now = utcnow()
        s.execute(text("SET LOCAL enable_hashjoin = off"))
        s.execute(text("SET LOCAL enable_mergejoin = off"))
        res: Any = s.execute(
            text(f"""
            UPDATE {_STAGE} st SET sid = sb.id, sb_status = sb.status
            FROM subscriber sb WHERE sb.email = st.email
        """)
        )
        known = res.rowcount
        s.execute(text("SET LOCAL enable_hashjoin = on"))
        s.execute(text("SET LOCAL enable_mergejoin = on"))
        self._blocked(
            s,
            f"""
            SELECT st.row_no, st.email, sp1.reason, sp2.reason, st.sb_status, su.status,
                   st.sid
            FROM {_STAGE} st
            LEFT JOIN suppression sp1 ON sp1.email = st.email
            LEFT JOIN suppression sp2 ON sp2.email = {_PG_HASH}
            LEFT JOIN LATERAL (SELECT x.status FROM subscription x
                               WHERE x.subscriber_id = st.sid AND x.list_id = :list
                               LIMIT 1) su ON true
            WHERE sp1.id IS NOT NULL OR sp2.id IS NOT NULL
               OR st.sb_status <> 'active' OR su.status = 'unsubscribed'
        """,
            counts,
            errors,
            now,
        )
        staged = len(chunk.items) - counts["suppressed"]
        # 2. New subscribers, and their membership, in one statement.  A plain insert
        #    (ON CONFLICT's speculative insertion costs more); if a concurrent writer
        #    adds one of these addresses first, the unique index refuses it and the
        #    chunk is applied again by the portable path.
        counts["new"] = (
            s.scalar(
                text(f"""
            WITH ins AS (
                INSERT INTO subscriber (email, name, variant, attributes, status, source,
                                        created_at, updated_at, confirmed_at)
                SELECT st.email, st.name, st.variant, CAST(st.attrs AS jsonb), 'active',
                       :source, :now, :now, :now
                FROM {_STAGE} st WHERE st.sid IS NULL
                RETURNING id),
            sub AS (
                INSERT INTO subscription (subscriber_id, list_id, status, created_at, updated_at)
                SELECT id, :list, 'active', :now, :now FROM ins)
            SELECT count(*) FROM ins
        """),
                {"source": self.source, "now": now, "list": self.list_id},
            )
            or 0
        )
        updated: set[str] = set()
        if known:
            s.execute(text(f"DELETE FROM {_STAGE} WHERE sid IS NULL"))
            s.execute(text("SET LOCAL enable_hashjoin = off"))
            s.execute(text("SET LOCAL enable_mergejoin = off"))
            updated = self._existing(s, now)
        counts["updated"] = len(updated)
        counts["unchanged"] = staged - counts["new"] - counts["updated"]

    def _apply_portable(
        self, s: Session, chunk: _Chunk, counts: dict[str, int], errors: list[RowError]
    ) -> None:
        """SQLite, and PostgreSQL when a concurrent writer raced us: ON CONFLICT throughout."""
        pg = self.pg
        now = utcnow()
        hash_expr = _PG_HASH if pg else "st.email_hash"
        self._blocked(
            s,
            f"""
            SELECT st.row_no, st.email, sp1.reason, sp2.reason, sb.status, su.status, sb.id
            FROM {_STAGE} st
            LEFT JOIN suppression sp1 ON sp1.email = st.email
            LEFT JOIN suppression sp2 ON sp2.email = {hash_expr}
            LEFT JOIN subscriber sb ON sb.email = st.email
            LEFT JOIN subscription su ON su.subscriber_id = sb.id AND su.list_id = :list
            WHERE sp1.id IS NOT NULL OR sp2.id IS NOT NULL OR sb.status <> 'active'
               OR su.status = 'unsubscribed'
        """,
            counts,
            errors,
            now,
        )
        staged = len(chunk.items) - counts["suppressed"]
        attrs_expr = "CAST(st.attrs AS jsonb)" if pg else "st.attrs"
        new_set = {
            r[0]
            for r in s.execute(
                text(f"""
            INSERT INTO subscriber (email, name, variant, attributes, status, source,
                                    created_at, updated_at, confirmed_at)
            SELECT st.email, st.name, st.variant, {attrs_expr}, 'active', :source,
                   :now, :now, :now
            FROM {_STAGE} st
            WHERE NOT EXISTS (SELECT 1 FROM subscriber x WHERE x.email = st.email)
            ON CONFLICT (email) DO NOTHING
            RETURNING email
        """),
                {"source": self.source, "now": now},
            )
        }
        counts["new"] = len(new_set)
        # New people join the list here too (step 4 of _existing), then are subtracted.
        updated = self._existing(s, now) - new_set
        counts["updated"] = len(updated)
        counts["unchanged"] = staged - counts["new"] - counts["updated"]
        if not pg:
            s.execute(text(f"DELETE FROM {_STAGE}"))

    def _resubscribe(self, s: Session, blocked: Sequence[Any], now: dt.datetime) -> None:
        """``--resubscribe``: lift suppressions and unsubscribes, each one audited."""
        for _row_no, email, r1, r2, st_sb, st_su, sid in blocked:
            s.execute(
                delete(Suppression).where(Suppression.email.in_([email, address_hash(email)]))
            )
            if sid is not None and st_sb == "blocked":
                s.execute(update(Subscriber).where(Subscriber.id == sid).values(status="active"))
            if sid is not None and st_su == "unsubscribed":
                s.execute(
                    update(Subscription)
                    .where(Subscription.subscriber_id == sid, Subscription.list_id == self.list_id)
                    .values(status="active", updated_at=now, unsubscribed_at=None, reason=None)
                )
            audit(
                s,
                self.actor,
                "subscribers.resubscribe",
                email,
                previous=r1 or r2 or st_su or st_sb,
            )

    def _existing(self, s: Session, now: dt.datetime) -> set[str]:
        """Update people already known; returns the addresses whose record or membership changed."""
        pg = self.pg
        list_id = self.list_id
        # 3. Existing subscribers whose name, variant or attributes changed.
        if pg:
            sql = f"""
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
            """
        else:
            sql = f"""
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
            """
        changed = set(s.execute(text(sql), {"now": now}).scalars())
        # 4. Memberships: add to the list, or activate an unconfirmed one (consent asserted).
        joined = s.execute(
            text(f"""
            INSERT INTO subscription (subscriber_id, list_id, status, created_at, updated_at)
            SELECT sb.id, :list, 'active', :now, :now
            FROM {_STAGE} st JOIN subscriber sb ON sb.email = st.email
            WHERE sb.status = 'active'
            ON CONFLICT (subscriber_id, list_id) DO NOTHING
            RETURNING subscriber_id
        """),
            {"list": list_id, "now": now},
        ).scalars()
        activated = s.execute(
            text(f"""
            UPDATE subscription SET status = 'active', updated_at = :now
            WHERE list_id = :list AND status = 'unconfirmed' AND subscriber_id IN (
                SELECT sb.id FROM {_STAGE} st JOIN subscriber sb ON sb.email = st.email)
            RETURNING subscriber_id
        """),
            {"list": list_id, "now": now},
        ).scalars()
        touched = set(joined) | set(activated)
        if touched:
            changed |= set(
                s.scalars(select(Subscriber.email).where(Subscriber.id.in_(list(touched))))
            )
        return changed


def _probe_writable(path: Path) -> None:
    """Refuse a report path that cannot be written, before the import changes anything."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory", str(path))
        with tmp.open("w", encoding="utf-8"):
            pass
        tmp.unlink()
    except OSError as exc:
        raise ImportFileError(
            f"{path}: cannot write the error report ({exc.strerror}); nothing was imported "
            "/ 无法写入错误报告，未导入任何数据"
        ) from exc


def _write_report(path: Path, errors: list[RowError]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv_writer(fh)  # formula cells neutralised (OWASP)
        w.writerow(["row", "value", "reason"])
        for e in sorted(errors, key=lambda e: e.row):
            w.writerow([e.row, e.value, e.reason])
    tmp.replace(path)
