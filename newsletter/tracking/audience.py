"""A send's denominators: its deliveries by script variant, domain group and state.

A GROUP BY over the send's deliveries (a million rows: seconds), which also gives the
deliveries each relay carried and how many are at risk of a duplicate; kept in ``send_audience``
once the send has ended. The worker that finishes a send computes it at once
(:func:`warm`), so the first person to open the send's statistics does not wait for it;
a bounce ingested later drops the cached rows (``rollups``) and the next read rebuilds them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.core.db import session_scope
from newsletter.models import Delivery, Subscriber
from newsletter.models.tracking import SendAudience
from newsletter.tracking.rollups import domain_group

__all__ = ["STATES", "Tallies", "tallies", "warm"]

log = logging.getLogger(__name__)

STATES = ("queued", "sending", "sent", "deferred", "bounced", "failed", "skipped")


@dataclass(slots=True)
class Tallies:
    """An ended (or running) send's deliveries counted three ways from one GROUP BY."""

    #: (variant, domain group) → delivery state → count
    audience: dict[tuple[str, str], dict[str, int]]
    #: relay → deliveries it carried (sent)
    relays: dict[str, int]
    #: deliveries counted at risk of a duplicate
    at_risk: int


def tallies(session: Session, send_id: int, ended: bool) -> Tallies:
    """The send's deliveries by variant, domain group, state, relay and at-risk flag; kept
    in ``send_audience`` once the send has ended (``ended``), read from there after."""
    cached = session.execute(
        select(SendAudience.variant, SendAudience.domain_group, SendAudience.state,
               SendAudience.relay, SendAudience.at_risk, SendAudience.n)
        .where(SendAudience.send_id == send_id)
    ).all()  # fmt: skip
    rows: list[tuple[str, str, str, str, bool, int]] = [
        (v, g, st, r, bool(a), int(n)) for v, g, st, r, a, n in cached
    ]
    if not rows:
        rows = _count(session, send_id)
        # A row still ``sending`` (a cancelled send's message on the wire) records its
        # outcome later: counts that include it are not kept.
        if ended and rows and not any(r[2] == "sending" for r in rows):
            try:
                with session.begin_nested():  # two first readers (the worker's warm, a
                    session.add_all(  # person's page) may race; the loser keeps nothing
                        SendAudience(send_id=send_id, variant=v, domain_group=g, state=st,
                                     relay=r, at_risk=a, n=n)
                        for v, g, st, r, a, n in rows
                    )  # fmt: skip
                    session.flush()
            except IntegrityError:
                pass  # the other reader kept the same counts
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATES, 0))
    relays: dict[str, int] = defaultdict(int)
    at_risk = 0
    for v, g, st, r, a, n in rows:
        out[(v, g)][st] += n
        if st == "sent":
            relays[r or "(unrecorded)"] += n
        if a:
            at_risk += n
    return Tallies(dict(out), dict(sorted(relays.items())), at_risk)


def _count(session: Session, send_id: int) -> list[tuple[str, str, str, str, bool, int]]:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        dom = func.split_part(Subscriber.email, "@", 2)
    else:
        dom = func.substr(Subscriber.email, func.instr(Subscriber.email, "@") + 1)
    relay = func.coalesce(Delivery.relay, "")
    risk = func.coalesce(Delivery.at_risk, False)
    merged: dict[tuple[str, str, str, str, bool], int] = defaultdict(int)
    for v, d, st, r, a, n in session.execute(
        select(Delivery.variant, dom, Delivery.state, relay, risk, func.count())
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.send_id == send_id)
        .group_by(Delivery.variant, dom, Delivery.state, relay, risk)
    ):
        merged[(v, domain_group("@" + (d or "")), st, r or "", bool(a))] += int(n)
    return [(*key, n) for key, n in merged.items() if n]


def warm(send_id: int) -> None:
    """Compute and keep an ended send's denominators now (best effort: a failure only
    leaves the work to the first read)."""
    try:
        with session_scope() as s:
            tallies(s, send_id, True)
    except Exception as exc:  # the send has finished whatever happens here
        log.warning("send %s: its statistics' denominators were not kept: %s", send_id, exc)
