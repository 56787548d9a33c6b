"""The delivery ledger's hand-written SQL, named and documented in one place.

Most statements are built with SQLAlchemy; these few are written out because the
generated form is slower or cannot say the same thing (``unnest`` of parallel arrays, an
advisory lock, session settings). Each runs through ``exec_driver_sql`` (psycopg's ``%s`` placeholders) or
``text()`` (``:name``), and ``tests/delivery/test_queries.py`` EXPLAINs every one on
PostgreSQL (and runs the settings, which cannot be planned), so a renamed column fails there and not in a send.
"""

from __future__ import annotations

__all__ = [
    "CLAIM_IDLE_TIMEOUT",
    "ISSUE_PLAN_LOCK",
    "MARK_SENDING",
    "MARK_SENT",
    "SYNC_COMMIT_OFF",
    "SYNC_COMMIT_RESET",
    "packed",
]

#: The separator of a packed array (ASCII unit separator) and the mark of a NULL element
#: (record separator); see :func:`packed`.
_SEP, _NULL = "\x1f", "\x1e"


def _unpack(cast: str) -> str:
    """SQL that turns one :func:`packed` parameter back into an array of ``cast``."""
    return f"string_to_array(%s, E'\\x1f', E'\\x1e')::{cast}[]"


def packed(values: list[object]) -> str:
    """A group's column as one text parameter, unpacked by ``string_to_array`` in the
    statement. psycopg adapts a Python list element by element (about 270 µs for the
    five arrays of a group of 25); one string costs next to nothing. None becomes the
    NULL mark; the two separator characters cannot occur in an element (they are
    replaced by spaces: they have no place in a reply, an id or a relay name), and an
    empty text is sent as one space (alone, it would unpack to no element at all)."""
    out = []
    for v in values:
        if v is None:
            out.append(_NULL)
        elif isinstance(v, str):
            out.append(v.replace(_SEP, " ").replace(_NULL, " ") or " ")
        elif hasattr(v, "isoformat"):
            out.append(v.isoformat())  # type: ignore[union-attr]
        else:
            out.append(str(v))
    return _SEP.join(out)


#: Mark one group ``sending`` before its SMTP transactions: the fence. A row is marked only
#: while its claim is still this worker's (``claimed_by``), its lease has not run out
#: (``lease_until > now``) and its send is still ``sending`` (a pause or cancel that has
#: committed stops the next group). Sets the new lease, counts the attempt and fixes the
#: Message-ID and relay; returns the ids it marked, and only those are sent.
#: Parameters: lease end, ids, message ids, relay names (each :func:`packed`), claim token,
#: now, send id.
MARK_SENDING = (
    "UPDATE delivery AS d SET state = 'sending', attempts = d.attempts + 1, "
    "message_id = v.mid, relay = v.relay, lease_until = %s "
    f"FROM unnest({_unpack('bigint')}, {_unpack('text')}, {_unpack('text')}) AS v(id, mid, relay) "
    "WHERE d.id = v.id AND d.claimed_by = %s AND d.state IN ('queued', 'deferred') "
    "AND d.lease_until > %s "
    "AND EXISTS (SELECT 1 FROM send WHERE send.id = %s AND send.state = 'sending') "
    "RETURNING d.id"
)

#: Record the messages of one group that the relay accepted, in one statement, and end
#: their lease. Fenced by the claim: a row another worker has taken over since (its lease
#: ran out) is left to that worker, which counted it at risk. Returns the ids recorded,
#: each with its send (for the ``message.delivered`` events). Parameters: ids, accepted-at
#: times, reply codes, reply texts, relay names (each :func:`packed`), claim token.
MARK_SENT = (
    "UPDATE delivery AS d SET state = 'sent', sent_at = v.at, last_code = v.code, "
    "last_reply = v.reply, relay = v.relay, claimed_by = NULL, lease_until = NULL "
    f"FROM unnest({_unpack('bigint')}, {_unpack('timestamptz')}, {_unpack('int')}, "
    f"{_unpack('text')}, {_unpack('text')}) "
    "AS v(id, at, code, reply, relay) WHERE d.id = v.id AND d.claimed_by = %s "
    "AND d.state = 'sending' RETURNING d.id, d.send_id, "
    # the endpoints listening for ``message.delivered``, read in the same statement (an
    # InitPlan, run once): no round trip of its own a group (``core.events.listening``)
    "(SELECT array_agg(e.id ORDER BY e.id) FROM webhook_endpoint AS e "
    "WHERE e.active AND e.events::jsonb ? 'message.delivered')"
)

#: One plan per issue at a time (``text()``, ``:i`` = the issue id): the cross-send check
#: that keeps a reader from getting an issue twice must see the other plan's rows.
ISSUE_PLAN_LOCK = "SELECT pg_advisory_xact_lock(7341, :i)"

#: Set inside a claim's transaction: a claim whose COMMIT never arrives (a partition
#: mid-transaction) would hold its rows locked until TCP gives up; the server ends such a
#: transaction after one lease instead, and the rows go back to the pool. A template
#: (SET takes no parameters): ``{seconds}`` is the lease in whole seconds, at least 1.
CLAIM_IDLE_TIMEOUT = "SET LOCAL idle_in_transaction_session_timeout = '{seconds}s'"

#: Set on a batch's own connection for the time of its sending loop (``text()``): the
#: per-message state changes need not wait for the WAL flush. A worker crash is covered by
#: the ledger as before; only a crash of PostgreSQL itself could lose the last few
#: milliseconds of outcomes, and those deliveries are then re-sent (counted at risk).
SYNC_COMMIT_OFF = "SET synchronous_commit TO OFF"

#: The server's default again, before the batch's connection goes back to the pool: after
#: the last outcomes have committed, and after a failed batch's rollback.
SYNC_COMMIT_RESET = "RESET synchronous_commit"
