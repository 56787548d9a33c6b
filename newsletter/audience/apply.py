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
from sqlalchemy import DateTime, TextClause, bindparam, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.audience import queries as q
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


def _stamped(sql: str) -> TextClause:
    """``sql`` with ``:now`` bound as the ORM binds a timestamp, so on SQLite the stored
    text compares with the ORM's own (the welcome series compares ``confirmed_at``)."""
    return text(sql).bindparams(bindparam("now", type_=DateTime(timezone=True)))


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
        *,
        welcome: bool = False,
    ) -> None:
        self.list_id = list_id
        #: New memberships count as confirmed now, so the list's welcome series starts.
        self.welcome = welcome
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
            s.execute(text(q.CREATE_STAGE_PG))
            raw: Any = s.connection().connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cur, cur.copy(q.COPY_STAGE_PG) as cp:
                cp.write(
                    "".join([f"{n}\t{x}\n" for n, x in zip(chunk.rows, chunk.items, strict=True)])
                )
            return
        s.execute(text(q.CREATE_STAGE_SQLITE))
        s.execute(text(q.CLEAR_STAGE))
        s.execute(
            text(q.FILL_STAGE_SQLITE),
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
                s.execute(text(q.SYNCHRONOUS_COMMIT_OFF))
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

        Should a concurrent writer have added one of the addresses meanwhile, the unique
        index refuses the COPY and ``apply`` re-runs the chunk with conflict handling.
        """
        n = len(chunk.items)
        if self._sequence is None:
            name = s.scalar(text(q.SUBSCRIBER_SEQUENCE))
            self._sequence = str(name).replace("'", "''")
        # As text, ready for COPY: no per-id Python object on the way.
        ids = str(
            s.scalar(text(q.NEXT_SUBSCRIBER_IDS.format(sequence=self._sequence)), {"n": n})
        ).split(",")
        now = utcnow().isoformat()
        source = copy_field(self.source)
        tail = f"\tactive\t{source}\t{now}\t{now}\t{now}\n"
        confirmed = now if self.welcome else "\\N"
        member = f"\t{self.list_id}\tactive\t{now}\t{now}\t{confirmed}\n"
        raw: Any = s.connection().connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cur:
            with cur.copy(q.COPY_SUBSCRIBERS_PG) as cp:
                cp.write(
                    "".join([f"{i}\t{x}{tail}" for i, x in zip(ids, chunk.items, strict=True)])
                )
            with cur.copy(q.COPY_SUBSCRIPTIONS_PG) as cp:
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
                text(q.DROP_STAGE_ROWS).bindparams(bindparam("rows", expanding=True)),
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

        Hash and merge joins are switched off for the look-ups against ``subscriber``
        (see ``queries.HASH_AND_MERGE_JOINS_OFF``).
        """
        now = utcnow()
        for setting in q.HASH_AND_MERGE_JOINS_OFF:
            s.execute(text(setting))
        res: Any = s.execute(text(q.MATCH_KNOWN_PG))
        known = res.rowcount
        for setting in q.HASH_AND_MERGE_JOINS_ON:
            s.execute(text(setting))
        self._blocked(s, q.BLOCKED_PG, counts, errors, now)
        staged = len(chunk.items) - counts["suppressed"]
        counts["new"] = (
            s.scalar(
                text(q.INSERT_NEW_PG),
                {"source": self.source, "now": now, "list": self.list_id, "welcome": self.welcome},
            )
            or 0
        )
        updated: set[str] = set()
        if known:
            s.execute(text(q.DROP_NEW_FROM_STAGE))
            for setting in q.HASH_AND_MERGE_JOINS_OFF:
                s.execute(text(setting))
            updated = self._existing(s, now)
        counts["updated"] = len(updated)
        counts["unchanged"] = staged - counts["new"] - counts["updated"]

    def _apply_portable(
        self, s: Session, chunk: Chunk, counts: dict[str, int], errors: list[RowError]
    ) -> None:
        """SQLite, and PostgreSQL when a concurrent writer raced us: ON CONFLICT throughout."""
        pg = self.pg
        now = utcnow()
        blocked = q.BLOCKED_PORTABLE_PG if pg else q.BLOCKED_PORTABLE_SQLITE
        self._blocked(s, blocked, counts, errors, now)
        staged = len(chunk.items) - counts["suppressed"]
        insert_new = q.INSERT_NEW_PORTABLE_PG if pg else q.INSERT_NEW_PORTABLE_SQLITE
        new_set = {
            r[0] for r in s.execute(_stamped(insert_new), {"source": self.source, "now": now})
        }
        counts["new"] = len(new_set)
        # New people join the list here too (step 4 of _existing), then are subtracted.
        updated = self._existing(s, now) - new_set
        counts["updated"] = len(updated)
        counts["unchanged"] = staged - counts["new"] - counts["updated"]
        if not pg:
            s.execute(text(q.CLEAR_STAGE))

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
        # 3. Existing subscribers whose name, variant or attributes changed.
        changed_sql = q.UPDATE_EXISTING_PG if self.pg else q.UPDATE_EXISTING_SQLITE
        changed = set(s.execute(_stamped(changed_sql), {"now": now}).scalars())
        # 4. Memberships: add to the list, or activate an unconfirmed one (consent asserted).
        params = {"list": self.list_id, "now": now, "welcome": self.welcome}
        joined = s.execute(_stamped(q.JOIN_LIST), params).scalars()
        activated = s.execute(_stamped(q.ACTIVATE_UNCONFIRMED), params).scalars()
        touched = set(joined) | set(activated)
        if touched:
            changed |= set(
                s.scalars(select(Subscriber.email).where(Subscriber.id.in_(list(touched))))
            )
        return changed
