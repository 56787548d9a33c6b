"""The ledger's small helpers, each pinned down on its own (found by a mutation run over
``delivery/lease.py`` and ``delivery/outcomes.py``: the whole-send tests pass whether these
give rows back or not, because a lease that runs out gives them back too, only later).

* ``release`` gives back exactly the listed rows that are still queued;
* ``release_claim`` gives back exactly this claim's queued and deferred rows, never a row
  mid-transaction (``sending``) and never another claim's;
* ``_backoff`` doubles from one minute to a one-hour cap, with ±25% jitter;
* ``_suppress_if_always_failing`` suppresses an address only after the configured number
  of consecutive sends, the most recent ones, all ended ``failed``.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from newsletter.core.clock import now as utcnow
from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.lease import release
from newsletter.delivery.outcomes import _backoff, _suppress_if_always_failing, release_claim
from newsletter.delivery.smtp import Outcome
from newsletter.models import Delivery, Send, Subscriber, Suppression
from tests.factories import seed


def _rows(send_id: int, n: int) -> list[int]:
    """``n`` deliveries of the send, to reader0 … reader{n-1}, in id order."""
    with session_scope() as s:
        subs = s.scalars(select(Subscriber.id).order_by(Subscriber.id).limit(n)).all()
        rows = [Delivery(send_id=send_id, subscriber_id=sid) for sid in subs]
        s.add_all(rows)
        s.flush()
        return [d.id for d in rows]


def _set(ids: list[int], **values: object) -> None:
    with session_scope() as s:
        for d in s.scalars(select(Delivery).where(Delivery.id.in_(ids))):
            for k, v in values.items():
                setattr(d, k, v)


def _claims(ids: list[int]) -> dict[int, tuple[str | None, bool]]:
    with session_scope() as s:
        return {
            d.id: (d.claimed_by, d.lease_until is not None)
            for d in s.scalars(select(Delivery).where(Delivery.id.in_(ids)))
        }


def test_release_gives_back_the_listed_queued_rows_only(any_db) -> None:  # type: ignore[no-untyped-def]
    reset_settings(any_db)
    ids = seed(4)
    rows = _rows(ids["send"], 4)
    lease = utcnow() + dt.timedelta(seconds=60)
    _set(rows, claimed_by="w:1", lease_until=lease)
    _set(rows[1:2], state="sending")
    with session_scope() as s:
        release(s, rows[:3])  # the fourth is not listed
        release(s, [])  # nothing listed: nothing happens (and no statement fails)
    got = _claims(rows)
    assert got[rows[0]] == (None, False) and got[rows[2]] == (None, False)
    assert got[rows[1]] == ("w:1", True)  # mid-transaction: kept
    assert got[rows[3]] == ("w:1", True)  # not listed: kept


def test_release_claim_gives_back_this_claims_waiting_rows_only(any_db) -> None:  # type: ignore[no-untyped-def]
    reset_settings(any_db)
    ids = seed(5)
    rows = _rows(ids["send"], 5)
    lease = utcnow() + dt.timedelta(seconds=60)
    _set(rows, claimed_by="w:mine", lease_until=lease)
    _set(rows[1:2], state="deferred")
    _set(rows[2:3], state="sending")
    _set(rows[3:4], state="sent")
    _set(rows[4:5], claimed_by="w:other")
    with session_scope() as s:
        release_claim(s, "w:mine")
    got = _claims(rows)
    assert got[rows[0]] == (None, False)  # queued
    assert got[rows[1]] == (None, False)  # deferred
    assert got[rows[2]] == ("w:mine", True)  # sending: its outcome is still to come
    assert got[rows[3]] == ("w:mine", True)  # sent: done, left alone
    assert got[rows[4]] == ("w:other", True)  # another worker's claim


@pytest.mark.parametrize(
    ("attempts", "base"), [(0, 60), (1, 60), (2, 120), (3, 240), (6, 1920), (7, 3600), (40, 3600)]
)
def test_backoff_doubles_to_an_hour_with_a_quarter_of_jitter(attempts: int, base: int) -> None:
    waits = [_backoff(attempts).total_seconds() for _ in range(400)]
    assert all(0.75 * base <= w <= 1.25 * base for w in waits), (min(waits), max(waits))
    # jitter spreads retries: both halves of the range are used
    assert min(waits) < base * 0.9 and max(waits) > base * 1.1


def _failed_sends(states: list[str]) -> tuple[int, str]:
    """One subscriber's deliveries in successive sends (oldest first) with ``states``;
    returns the newest delivery's id and the subscriber's address."""
    ids = seed(1)
    with session_scope() as s:
        sub = s.scalars(select(Subscriber)).one()
        first = s.get(Send, ids["send"])
        assert first is not None
        last = 0
        for i, state in enumerate(states):
            send = first if i == 0 else Send(publication_id=first.publication_id,
                                             issue_id=first.issue_id, list_id=first.list_id,
                                             channel="email", state="finished")  # fmt: skip
            if i:
                s.add(send)
                s.flush()
            d = Delivery(send_id=send.id, subscriber_id=sub.id, state=state)
            s.add(d)
            s.flush()
            last = d.id
        return last, sub.email


def _suppressed(email: str) -> bool:
    with session_scope() as s:
        return s.scalar(select(Suppression).where(Suppression.email == email)) is not None


@pytest.mark.parametrize(
    ("states", "suppressed"),
    [
        (["failed", "failed", "failed"], True),
        (["failed", "failed"], False),  # fewer sends than the rule counts
        (["failed", "sent", "failed", "failed"], False),  # a send that went through breaks the run
        (["sent", "failed", "failed", "failed"], True),  # the three most recent all failed
        (["failed", "failed", "bounced"], False),
        (["failed", "failed", "queued", "failed"], True),  # unfinished rows do not count
    ],
)
def test_soft_bounces_suppress_after_three_failed_sends_in_a_row(  # type: ignore[no-untyped-def]
    any_db, states: list[str], suppressed: bool
) -> None:
    reset_settings(any_db.model_copy(update={"soft_bounce_sends": 3}))
    last, email = _failed_sends(states)
    with session_scope() as s:
        _suppress_if_always_failing(s, last, email)
    assert _suppressed(email) is suppressed


def _record_one(outcome: Outcome, **kw: object) -> Delivery:
    from newsletter.delivery.outcomes import _record

    ids = seed(1)
    (row,) = _rows(ids["send"], 1)
    _set([row], state="sending", claimed_by="w:1", lease_until=utcnow())
    with session_scope() as s:
        n = _record(s, row, 1, outcome, "reader0@example.com", 5, claim_token="w:1", **kw)  # type: ignore[arg-type]
        assert n == 1
    with session_scope() as s:
        got = s.get(Delivery, row)
        assert got is not None
        s.expunge(got)
        return got


def test_a_sent_outcome_records_when_and_through_which_relay(any_db) -> None:  # type: ignore[no-untyped-def]
    reset_settings(any_db)
    at = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    d = _record_one(Outcome("sent", 250, "ok"), relay="r2", now=at)
    assert (d.state, d.relay, d.last_code, d.claimed_by, d.lease_until) == (
        "sent", "r2", 250, None, None)  # fmt: skip
    assert d.sent_at is not None and d.sent_at.replace(tzinfo=dt.UTC) == at


def test_a_sent_outcome_without_a_time_takes_the_clocks(any_db) -> None:  # type: ignore[no-untyped-def]
    reset_settings(any_db)
    before = utcnow()
    d = _record_one(Outcome("sent", 250, "ok"))
    assert d.sent_at is not None and d.sent_at.replace(tzinfo=dt.UTC) >= before.replace(
        microsecond=0
    )
    assert d.relay is None  # no relay named: none recorded


def test_a_refused_message_fails_at_once(any_db) -> None:  # type: ignore[no-untyped-def]
    reset_settings(any_db)
    failed = _record_one(Outcome("failed", None, "header injection"))
    assert failed.state == "failed" and failed.next_attempt_at is None


def test_a_deferral_waits_a_minute_after_the_first_attempt(any_db) -> None:  # type: ignore[no-untyped-def]
    reset_settings(any_db)
    at = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    later = _record_one(Outcome("deferred", 451, "try later"), now=at)
    assert later.state == "deferred" and later.next_attempt_at is not None
    wait = later.next_attempt_at.replace(tzinfo=dt.UTC) - at
    assert dt.timedelta(seconds=45) <= wait <= dt.timedelta(seconds=75)


def test_a_withdrawn_message_goes_back_as_if_never_sent(any_db) -> None:  # type: ignore[no-untyped-def]
    """A message withdrawn before its body (``Outcome.abandoned``: the lease may have run
    out) reached no relay: its row goes back due now, its attempt not counted, never
    ``failed`` even on its last allowed attempt, and no step towards a soft-bounce
    suppression."""
    from types import SimpleNamespace

    from newsletter.delivery.outcomes import Done, finish_group

    reset_settings(any_db.model_copy(update={"max_attempts": 2, "soft_bounce_sends": 1}))
    ids = seed(1)
    (row,) = _rows(ids["send"], 1)
    _set([row], state="sending", claimed_by="w:1", lease_until=utcnow(), attempts=2)
    ready = SimpleNamespace(row=(row, "zh-Hans", 1, 0, "reader0@example.com"), plan=None,
                            rcpt_domain="example.com")  # fmt: skip
    gone = Outcome("deferred", None, "lease ran out before the body", abandoned=True)
    with session_scope() as s:
        assert finish_group(s, [Done(ready, gone, "r1", utcnow(), False)], "w:1") == 1  # type: ignore[arg-type]
    with session_scope() as s:
        d = s.get(Delivery, row)
        assert d is not None
        assert (d.state, d.attempts, d.claimed_by, d.at_risk) == ("deferred", 1, None, False)
    assert not _suppressed("reader0@example.com")
