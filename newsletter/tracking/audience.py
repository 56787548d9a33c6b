"""A send's denominators: its deliveries by script variant, domain group and state.

A GROUP BY over the send's deliveries (a million rows: seconds), kept in ``send_audience``
once the send has ended. The worker that finishes a send computes it at once
(:func:`warm`), so the first person to open the send's statistics does not wait for it;
a bounce ingested later drops the cached rows (``rollups``) and the next read rebuilds them.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.core.db import session_scope
from newsletter.models import Delivery, Subscriber
from newsletter.models.tracking import SendAudience
from newsletter.tracking.rollups import domain_group

__all__ = ["STATES", "audience_counts", "warm"]

log = logging.getLogger(__name__)

STATES = ("queued", "sending", "sent", "deferred", "bounced", "failed", "skipped")


def audience_counts(
    session: Session, send_id: int, ended: bool
) -> dict[tuple[str, str], dict[str, int]]:
    """(variant, domain group) → delivery state → count; kept in ``send_audience`` once the
    send has ended (``ended``), read from there after."""
    cached = session.execute(
        select(SendAudience.variant, SendAudience.domain_group, SendAudience.state, SendAudience.n)
        .where(SendAudience.send_id == send_id)
    ).all()  # fmt: skip
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATES, 0))
    if cached:
        for v, g, st, n in cached:
            out[(v, g)][st] = int(n)
        return dict(out)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        dom = func.split_part(Subscriber.email, "@", 2)
    else:
        dom = func.substr(Subscriber.email, func.instr(Subscriber.email, "@") + 1)
    rows = session.execute(
        select(Delivery.variant, dom, Delivery.state, func.count())
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.send_id == send_id)
        .group_by(Delivery.variant, dom, Delivery.state)
    ).all()
    for v, d, st, n in rows:
        out[(v, domain_group("@" + (d or "")))][st] += int(n)
    if ended and out:
        session.add_all(
            SendAudience(send_id=send_id, variant=v, domain_group=g, state=st, n=n)
            for (v, g), states in out.items()
            for st, n in states.items()
            if n
        )
        session.flush()
    return dict(out)


def warm(send_id: int) -> None:
    """Compute and keep an ended send's denominators now (best effort: a failure only
    leaves the work to the first read)."""
    try:
        with session_scope() as s:
            audience_counts(s, send_id, True)
    except Exception as exc:  # the send has finished whatever happens here
        log.warning("send %s: its statistics' denominators were not kept: %s", send_id, exc)
