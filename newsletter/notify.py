"""Notifications to ops: send started, finished, auto-paused or failed; a slot with no issue.

Each notification is written to the audit log (so the console can show it) and
mailed to ``settings.ops_emails`` when configured.  A notification with a
``key`` is sent at most once per key: the tick may run every few seconds, but
"no approved issue for Monday's slot" must reach ops once.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import select
from sqlalchemy.orm import Session

from .config import get_settings
from .models import AuditLog

__all__ = ["notify"]

log = logging.getLogger(__name__)


def notify(session: Session, event: str, subject: str, body: str, *, key: str = "") -> bool:
    """Record and mail a notification. Returns False when ``key`` was already notified."""
    action = f"notify.{event}"
    if key and session.scalar(
        select(AuditLog.id).where(AuditLog.action == action, AuditLog.target == key).limit(1)
    ):
        return False
    session.add(
        AuditLog(
            actor="system", action=action, target=key, detail={"subject": subject, "body": body}
        )
    )
    session.flush()
    cfg = get_settings()
    if cfg.ops_emails:
        msg = EmailMessage()
        msg["From"] = cfg.from_address
        msg["To"] = ", ".join(cfg.ops_emails)
        msg["Subject"] = f"[newsletter] {subject}"
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain=cfg.from_address.rpartition("@")[2])
        msg.set_content(body, cte="8bit")
        from .delivery.smtp import connect

        conn = connect()
        try:
            for rcpt in cfg.ops_emails:
                outcome = conn.send(cfg.from_address, rcpt, msg.as_bytes())
                if outcome.state != "sent":
                    log.warning("ops notification to %s not sent: %s", rcpt, outcome.reply)
        finally:
            conn.close()
    return True
