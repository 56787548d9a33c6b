"""Writing checked rows to the database, a chunk per transaction: on PostgreSQL through a
staging table filled by COPY (new addresses straight into their tables by COPY), elsewhere
through portable statements; a chunk that meets a concurrent writer is applied again with
conflict handling, so an import converges whatever ran beside it."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

from psycopg import errors as psycopg_errors
from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.audience.addresses import address_hash
from newsletter.audience.rows import (
    Chunk,
    ImportSummary,
    RowError,
    copy_field,
)
from newsletter.core.audit import audit
from newsletter.core.db import session_scope
from newsletter.models import Subscriber, Subscription, Suppression, utcnow

_STAGE = "import_stage"


_COLS = "row_no, email, name, variant, attrs"


#: The value kept in the suppression list after erasure (see addresses.address_hash), in SQL.
_PG_HASH = "'sha256:' || encode(sha256(convert_to(st.email, 'UTF8')), 'hex')"


class Applier:
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

    def apply(self, chunk: Chunk) -> None:
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

    def _load(self, s: Session, chunk: Chunk) -> None:
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

    def _apply(self, chunk: Chunk, *, racing: bool) -> tuple[dict[str, int], list[RowError]]:
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

    def _copy_new(self, s: Session, chunk: Chunk) -> int:
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
        source = copy_field(self.source)
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
        chunk: Chunk,
        counts: dict[str, int],
        errors: list[RowError],
    ) -> None:
        """PostgreSQL.  A chunk with no address known before the import (see ``Known``)
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
        self, s: Session, chunk: Chunk, counts: dict[str, int], errors: list[RowError]
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
