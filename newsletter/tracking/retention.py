"""Retention: raw events older than a publication's ``event_retention_days`` are deleted.

Rollups, unique markers and the deliveries' first open and click times stay, so the
statistics do not change when the events behind them go.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.models import Event, Publication, Send, utcnow

__all__ = ["purge"]


def purge(
    session: Session, *, now: dt.datetime | None = None, batch: int = 10000
) -> dict[str, int]:
    """Delete raw events older than each publication's ``event_retention_days`` (0 = keep).

    Rollups, unique markers and delivery first-open/click times stay, so the
    statistics do not change.  Returns deleted events per publication slug.
    """
    now = now or utcnow()
    out: dict[str, int] = {}
    for pub in session.scalars(select(Publication)):
        days = int(pub.event_retention_days or 0)
        if days <= 0:
            continue
        cutoff = now - dt.timedelta(days=days)
        sends = select(Send.id).where(Send.publication_id == pub.id).scalar_subquery()
        deleted = 0
        while True:
            ids = list(
                session.scalars(
                    select(Event.id)
                    .where(Event.occurred_at < cutoff, Event.send_id.in_(sends))
                    .limit(batch)
                )
            )
            if not ids:
                break
            session.execute(delete(Event).where(Event.id.in_(ids)))
            deleted += len(ids)
        out[pub.slug] = deleted
    return out
