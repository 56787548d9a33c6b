"""The subscriber import's hand-written SQL, named and documented in one place.

The import applies a chunk of checked rows with set-based statements over a staging
table (``import_stage``) rather than row by row: on PostgreSQL the stage is filled by
COPY and looked up by index, elsewhere (SQLite, and PostgreSQL when a concurrent writer
raced a chunk) portable statements with ``ON CONFLICT`` do the same. The ORM would have
to spell these as one statement per row, which is what the import exists to avoid.

Each statement runs through ``text()`` (``:name`` parameters); the COPY statements
through psycopg's ``cursor.copy``. ``tests/audience/test_queries.py`` EXPLAINs every
statement PostgreSQL can plan, runs the others (SET, CREATE, COPY) in a transaction it
rolls back, and plans the SQLite variants on SQLite, so a renamed column fails there and
not in an import.
"""

from __future__ import annotations

__all__ = [
    "ACTIVATE_UNCONFIRMED",
    "ALL_SUBSCRIBER_EMAILS",
    "ALL_SUPPRESSION_EMAILS",
    "BLOCKED_PG",
    "BLOCKED_PORTABLE_PG",
    "BLOCKED_PORTABLE_SQLITE",
    "CLEAR_STAGE",
    "COPY_STAGE_PG",
    "COPY_SUBSCRIBERS_PG",
    "COPY_SUBSCRIPTIONS_PG",
    "COUNT_SUBSCRIBERS",
    "COUNT_SUPPRESSIONS",
    "CREATE_STAGE_PG",
    "CREATE_STAGE_SQLITE",
    "DROP_NEW_FROM_STAGE",
    "DROP_STAGE_ROWS",
    "FILL_STAGE_SQLITE",
    "HASH_AND_MERGE_JOINS_OFF",
    "HASH_AND_MERGE_JOINS_ON",
    "INSERT_NEW_PG",
    "INSERT_NEW_PORTABLE_PG",
    "INSERT_NEW_PORTABLE_SQLITE",
    "JOIN_LIST",
    "MATCH_KNOWN_PG",
    "NEXT_SUBSCRIBER_IDS",
    "SUBSCRIBER_SEQUENCE",
    "SYNCHRONOUS_COMMIT_OFF",
    "UPDATE_EXISTING_PG",
    "UPDATE_EXISTING_SQLITE",
]

#: The staging table one chunk passes through (a temporary table, one per connection).
STAGE = "import_stage"
_COLUMNS = "row_no, email, name, variant, attrs"
#: The value kept in the suppression list after erasure (``addresses.address_hash``), in
#: SQL over the stage's address.
_PG_HASH = "'sha256:' || encode(sha256(convert_to(st.email, 'UTF8')), 'hex')"

# -- the stage -----------------------------------------------------------------------

#: PostgreSQL's stage: ``sid`` and ``sb_status`` are filled by :data:`MATCH_KNOWN_PG`;
#: emptied by every commit, so a chunk never sees the previous one's rows.
CREATE_STAGE_PG = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (row_no integer, email text, "
    "name text, variant text, attrs text, sid bigint, sb_status text) "
    "ON COMMIT DELETE ROWS"
)
#: Fill PostgreSQL's stage (COPY text format: row number, address, name, variant, attributes).
COPY_STAGE_PG = f"COPY {STAGE} ({_COLUMNS}) FROM STDIN"
#: SQLite's stage, with each address's erasure hash computed in Python (no sha256 in SQL).
CREATE_STAGE_SQLITE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (row_no integer, email text, "
    "email_hash text, name text, variant text, attrs text)"
)
#: Fill SQLite's stage, one parameter set per row (``:r :e :h :n :v :a``).
FILL_STAGE_SQLITE = f"INSERT INTO {STAGE} VALUES (:r, :e, :h, :n, :v, :a)"
#: Empty the stage (SQLite keeps a temporary table's rows across commits).
CLEAR_STAGE = f"DELETE FROM {STAGE}"
#: Take the refused rows out of the stage; ``:rows`` is an expanding parameter.
DROP_STAGE_ROWS = f"DELETE FROM {STAGE} WHERE row_no IN :rows"
#: After the insert of new people: only the known ones are left to update.
DROP_NEW_FROM_STAGE = f"DELETE FROM {STAGE} WHERE sid IS NULL"

# -- session settings (PostgreSQL) ------------------------------------------------------

#: A chunk's commit need not wait for its WAL to reach disk: the import's final,
#: synchronous commit (its audit entry) flushes all of it, and a crash before then is an
#: interruption that re-running converges from.
SYNCHRONOUS_COMMIT_OFF = "SET LOCAL synchronous_commit = off"
#: The import grows ``subscriber`` tenfold or more, so its statistics go stale within one
#: run and the planner then prefers hashing the whole table for every chunk: the look-ups
#: against ``subscriber`` are forced to be stage-driven index probes, then set back.
HASH_AND_MERGE_JOINS_OFF = ("SET LOCAL enable_hashjoin = off", "SET LOCAL enable_mergejoin = off")
HASH_AND_MERGE_JOINS_ON = ("SET LOCAL enable_hashjoin = on", "SET LOCAL enable_mergejoin = on")

# -- a chunk of new addresses: COPY straight into the tables (PostgreSQL) ----------------

#: The sequence of ``subscriber.id``, whose values the COPY below supplies.
SUBSCRIBER_SEQUENCE = "SELECT pg_get_serial_sequence('subscriber', 'id')"
#: ``:n`` ids drawn from that sequence, as one comma-separated text ready for COPY. A
#: template: ``{sequence}`` is the (quoted) name :data:`SUBSCRIBER_SEQUENCE` returned.
NEXT_SUBSCRIBER_IDS = (
    "SELECT string_agg(nextval('{sequence}')::text, ',') FROM generate_series(1, :n)"
)
#: Every column supplied, so PostgreSQL can batch the rows into pages
#: (``heap_multi_insert``); the unique index still refuses an address a concurrent
#: writer added meanwhile, and the chunk is then applied again with conflict handling.
COPY_SUBSCRIBERS_PG = (
    "COPY subscriber (id, email, name, variant, attributes, status, source, "
    "created_at, updated_at, confirmed_at) FROM STDIN"
)
#: Their membership of the list.
COPY_SUBSCRIPTIONS_PG = (
    "COPY subscription (subscriber_id, list_id, status, created_at, updated_at, confirmed_at) "
    "FROM STDIN"
)
#: A new membership's ``confirmed_at``: the import time when the importer asked for the
#: list's welcome series (``:welcome``), else NULL, so the series never starts for it.
WELCOMED = "CASE WHEN :welcome THEN :now END"

# -- a chunk with known addresses (PostgreSQL) ------------------------------------------

#: Each staged address looked up once, by index: its subscriber id and status.
MATCH_KNOWN_PG = f"""
    UPDATE {STAGE} st SET sid = sb.id, sb_status = sb.status
    FROM subscriber sb WHERE sb.email = st.email
"""


def _blocked(hash_expr: str, *, matched: bool) -> str:
    """People who must not be (re)subscribed: suppressed (by address or by erasure hash),
    blocked or erased, or unsubscribed from the list ``:list``. Columns: row number,
    address, the two suppression reasons, subscriber status, membership status,
    subscriber id."""
    if matched:  # the stage already holds the subscriber (MATCH_KNOWN_PG)
        person = "st.sb_status, su.status, st.sid"
        joins = (
            "LEFT JOIN LATERAL (SELECT x.status FROM subscription x "
            "WHERE x.subscriber_id = st.sid AND x.list_id = :list LIMIT 1) su ON true"
        )
        inactive = "st.sb_status <> 'active'"
    else:
        person = "sb.status, su.status, sb.id"
        joins = (
            "LEFT JOIN subscriber sb ON sb.email = st.email "
            "LEFT JOIN subscription su ON su.subscriber_id = sb.id AND su.list_id = :list"
        )
        inactive = "sb.status <> 'active'"
    return f"""
    SELECT st.row_no, st.email, sp1.reason, sp2.reason, {person}
    FROM {STAGE} st
    LEFT JOIN suppression sp1 ON sp1.email = st.email
    LEFT JOIN suppression sp2 ON sp2.email = {hash_expr}
    {joins}
    WHERE sp1.id IS NOT NULL OR sp2.id IS NOT NULL OR {inactive}
       OR su.status = 'unsubscribed'
"""


#: Step 1 on PostgreSQL, over the matched stage (``:list``).
BLOCKED_PG = _blocked(_PG_HASH, matched=True)
#: Step 1 when a concurrent writer raced the chunk (PostgreSQL) (``:list``).
BLOCKED_PORTABLE_PG = _blocked(_PG_HASH, matched=False)
#: Step 1 on SQLite, the erasure hash computed into the stage (``:list``).
BLOCKED_PORTABLE_SQLITE = _blocked("st.email_hash", matched=False)

#: Step 2 on PostgreSQL: new subscribers and their membership in one statement; returns
#: how many. A plain insert (ON CONFLICT's speculative insertion costs more): if a
#: concurrent writer adds one of these addresses first, the unique index refuses it and
#: the chunk is applied again by the portable statements. (``:source :now :list :welcome``)
INSERT_NEW_PG = f"""
    WITH ins AS (
        INSERT INTO subscriber (email, name, variant, attributes, status, source,
                                created_at, updated_at, confirmed_at)
        SELECT st.email, st.name, st.variant, CAST(st.attrs AS jsonb), 'active',
               :source, :now, :now, :now
        FROM {STAGE} st WHERE st.sid IS NULL
        RETURNING id),
    sub AS (
        INSERT INTO subscription (subscriber_id, list_id, status, created_at, updated_at,
                                  confirmed_at)
        SELECT id, :list, 'active', :now, :now, {WELCOMED} FROM ins)
    SELECT count(*) FROM ins
"""


def _insert_new_portable(attrs_expr: str) -> str:
    return f"""
    INSERT INTO subscriber (email, name, variant, attributes, status, source,
                            created_at, updated_at, confirmed_at)
    SELECT st.email, st.name, st.variant, {attrs_expr}, 'active', :source,
           :now, :now, :now
    FROM {STAGE} st
    WHERE NOT EXISTS (SELECT 1 FROM subscriber x WHERE x.email = st.email)
    ON CONFLICT (email) DO NOTHING
    RETURNING email
"""


#: Step 2 with conflict handling: new subscribers (their membership follows with
#: :data:`JOIN_LIST`); returns their addresses. (``:source :now``)
INSERT_NEW_PORTABLE_PG = _insert_new_portable("CAST(st.attrs AS jsonb)")
INSERT_NEW_PORTABLE_SQLITE = _insert_new_portable("st.attrs")

#: Step 3: existing active subscribers whose name, variant or attributes changed (an
#: empty name keeps the stored one; attributes are merged); returns their addresses.
#: (``:now``)
UPDATE_EXISTING_PG = f"""
    UPDATE subscriber sb SET
        name = CASE WHEN st.name <> '' THEN st.name ELSE sb.name END,
        variant = st.variant,
        attributes = sb.attributes || CAST(st.attrs AS jsonb),
        updated_at = :now
    FROM {STAGE} st
    WHERE sb.email = st.email AND sb.status = 'active' AND (
        (st.name <> '' AND st.name <> sb.name) OR st.variant <> sb.variant
        OR NOT (sb.attributes @> CAST(st.attrs AS jsonb)))
    RETURNING sb.email
"""
UPDATE_EXISTING_SQLITE = f"""
    UPDATE subscriber SET
        name = CASE WHEN st.name <> '' THEN st.name ELSE subscriber.name END,
        variant = st.variant,
        attributes = json_patch(subscriber.attributes, st.attrs),
        updated_at = :now
    FROM {STAGE} st
    WHERE subscriber.email = st.email AND subscriber.status = 'active' AND (
        (st.name <> '' AND st.name <> subscriber.name)
        OR st.variant <> subscriber.variant
        OR json_patch(subscriber.attributes, st.attrs)
           <> json(subscriber.attributes))
    RETURNING subscriber.email
"""

#: Step 4: every staged active subscriber joins the list ``:list``; returns the
#: subscriber ids that joined. (``:list :now :welcome``)
JOIN_LIST = f"""
    INSERT INTO subscription (subscriber_id, list_id, status, created_at, updated_at,
                              confirmed_at)
    SELECT sb.id, :list, 'active', :now, :now, {WELCOMED}
    FROM {STAGE} st JOIN subscriber sb ON sb.email = st.email
    WHERE sb.status = 'active'
    ON CONFLICT (subscriber_id, list_id) DO NOTHING
    RETURNING subscriber_id
"""
#: Step 4: an unconfirmed membership becomes active (the importer asserts consent);
#: returns the subscriber ids. (``:list :now :welcome``)
ACTIVATE_UNCONFIRMED = f"""
    UPDATE subscription SET status = 'active', updated_at = :now,
        confirmed_at = COALESCE(confirmed_at, {WELCOMED})
    WHERE list_id = :list AND status = 'unconfirmed' AND subscriber_id IN (
        SELECT sb.id FROM {STAGE} st JOIN subscriber sb ON sb.email = st.email)
    RETURNING subscriber_id
"""

# -- the addresses known before the import (rows.Known) ---------------------------------

COUNT_SUBSCRIBERS = "SELECT count(*) FROM subscriber"
COUNT_SUPPRESSIONS = "SELECT count(*) FROM suppression"
ALL_SUBSCRIBER_EMAILS = "SELECT email FROM subscriber"
ALL_SUPPRESSION_EMAILS = "SELECT email FROM suppression"
