"""Console services for the home page: the dashboard counts and the open alerts."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import func, select

from newsletter.core.db import session_scope
from newsletter.models import AuditLog, Issue, MailingList, Send, Suppression, utcnow

__all__ = ["ALERT_EVENTS", "dashboard", "open_alerts"]


def dashboard() -> dict[str, Any]:
    with session_scope() as s:
        return {
            "issues": s.scalar(select(func.count()).select_from(Issue)) or 0,
            "sends": s.scalar(select(func.count()).select_from(Send)) or 0,
            "lists": s.scalar(select(func.count()).select_from(MailingList)) or 0,
            "suppressions": s.scalar(select(func.count()).select_from(Suppression)) or 0,
        }


#: Notifications that need a person's attention, shown as a banner on every console page.
ALERT_EVENTS = (
    "notify.auto_paused",
    "notify.auto_resume_gave_up",
    "notify.failed",
    "notify.empty",
)


def open_alerts(hours: int = 24) -> list[dict[str, Any]]:
    """Alerts of the last ``hours`` whose send is still paused or failed (newest first).

    They come from the audit log, so they show even when the relay that would
    have mailed them is down.
    """
    since = utcnow() - dt.timedelta(hours=hours)
    out: list[dict[str, Any]] = []
    with session_scope() as s:
        rows = s.scalars(
            select(AuditLog)
            .where(AuditLog.action.in_(ALERT_EVENTS), AuditLog.at >= since)
            .order_by(AuditLog.id.desc())
            .limit(20)
        ).all()
        seen: set[int] = set()
        for row in rows:
            m = re.search(r"(\d+)", row.target or "")
            send_id = int(m.group(1)) if m else None
            if send_id is None or send_id in seen:
                continue
            seen.add(send_id)
            send = s.get(Send, send_id)
            if send is None or send.state not in ("paused", "failed", "empty"):
                continue
            out.append(
                {
                    "send_id": send_id,
                    "state": send.state,
                    "subject": str((row.detail or {}).get("subject", "")),
                    "body": str((row.detail or {}).get("body", ""))[:300],
                }
            )
    return out
