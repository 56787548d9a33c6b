"""The scheduler tick: start due sends exactly once, revive stalled ones.

A due send is claimed by one conditional ``UPDATE send SET state='planning'
WHERE state='scheduled' AND scheduled_at <= now``: when two beat processes
tick at once, the database lets exactly one of them win each send.  A send
due longer ago than the grace period is not started; it is marked failed with
an explanation so that ops decide.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update

from .config import get_settings
from .db import session_scope
from .models import Delivery, Send, utcnow

__all__ = ["tick"]


def tick(now: dt.datetime | None = None) -> list[int]:
    """Return the ids of sends the caller must (re)start."""
    now = now or utcnow()
    cfg = get_settings()
    grace = dt.timedelta(seconds=cfg.grace_seconds)
    out: list[int] = []
    with session_scope() as s:
        due = list(
            s.scalars(select(Send.id).where(Send.state == "scheduled", Send.scheduled_at <= now))
        )
        for send_id in due:
            sched = s.scalar(select(Send.scheduled_at).where(Send.id == send_id))
            if sched is not None and now - sched > grace:
                res = s.execute(
                    update(Send)
                    .where(Send.id == send_id, Send.state == "scheduled")
                    .values(
                        state="failed",
                        error=f"missed its slot by more than {grace}; "
                        "reschedule or start it by hand",
                        finished_at=now,
                    )
                )
                continue
            res = s.execute(
                update(Send)
                .where(Send.id == send_id, Send.state == "scheduled")
                .values(state="planning", updated_at=now)
            )
            if res.rowcount == 1:  # type: ignore[attr-defined]
                out.append(send_id)
        # Sends stuck in planning (crash while planning) or sending with nobody working.
        stale = now - dt.timedelta(seconds=max(30, cfg.lease_seconds // 2))
        for send_id, state in s.execute(
            select(Send.id, Send.state).where(
                Send.state.in_(("planning", "sending")), Send.updated_at < stale
            )
        ):
            if send_id in out:
                continue
            if state == "planning":
                out.append(send_id)
                continue
            busy = s.scalar(
                select(func.count()).where(
                    Delivery.send_id == send_id,
                    Delivery.lease_until.is_not(None),
                    Delivery.lease_until > now,
                )
            )
            recent = s.scalar(select(func.max(Delivery.sent_at)).where(Delivery.send_id == send_id))
            if not busy and (recent is None or recent < stale):
                s.execute(update(Send).where(Send.id == send_id).values(updated_at=now))
                out.append(send_id)
    return out
