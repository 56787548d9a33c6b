"""Notifications to ops: send started, finished, auto-paused or failed; a slot with no issue.

Each notification is written to the audit log (so the console can show it as a
banner), posted to ``settings.alert_webhook_url`` when configured (a JSON body
that WeCom, DingTalk and Slack incoming webhooks accept: ``msgtype``/``text``
and ``text`` keys, plus ``event``, ``subject`` and ``body``), and mailed to
``settings.ops_emails`` through ``settings.alert_smtp_host`` when set, else the
sending relay.  An alert about the relay therefore still arrives while the relay
is down (webhook, console, alert relay).  Delivery failures of an alert are
logged, never raised: an alert never stops the work it reports on.

Alerts are never deduplicated across different events. ``key`` names what the alert
is about (a send, a relay, a slot) and, for an event that happens once, the event
itself (a pause by when it began):

* by default an alert is dropped only when an identical one (same kind, same key, same
  subject and body) was sent within ``alert_dedupe_seconds`` (60 s): several workers
  reporting one situation at once;
* ``once=True``: at most one alert per kind and key, ever, for events that happen once
  (a send started or finished; the tick runs every few seconds, but "no approved issue
  for Monday's slot" must reach ops once);
* ``needs_person=True``: always sent, never deduplicated, and it says so in its subject
  and body (a pause that will not heal by itself).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.core.audit import audit
from newsletter.core.config import get_settings
from newsletter.core.orm import utcnow
from newsletter.models import AuditLog

__all__ = ["notify"]

log = logging.getLogger(__name__)

#: Where alert mail gets its connection when no alert relay is set: the relay layer
#: (:mod:`newsletter.delivery.relays`, which every sending process imports) installs
#: "the first general relay in service" here, so this module needs no import of it.
system_connect: Callable[[], Any] | None = None


#: How an alert that needs a person says so.
NEEDS_PERSON = "需要人工处理 / needs a person"


def notify(
    session: Session,
    event: str,
    subject: str,
    body: str,
    *,
    key: str = "",
    once: bool = False,
    needs_person: bool = False,
) -> bool:
    """Record and send an alert. Returns False when it was a duplicate (see the module)."""
    action = f"notify.{event}"
    if needs_person:
        subject = f"{NEEDS_PERSON}: {subject}"
        body = f"{body}\n{NEEDS_PERSON}: 发送不会自动恢复，请检查后手动恢复或取消 / it will not resume by itself; check, then resume or cancel it"
    digest = hashlib.sha256(f"{subject}\0{body}".encode()).hexdigest()[:32]
    if not needs_person and _duplicate(session, action, key, digest, once=once):
        log.info("alert %s %s not sent again (identical to a recent one)", event, key)
        return False
    audit(session, "system", action, key, subject=subject, body=body, digest=digest)
    session.flush()
    cfg = get_settings()
    if cfg.alert_webhook_url:
        _post_webhook(cfg.alert_webhook_url, event, subject, body)
    if cfg.ops_emails:
        msg = EmailMessage()
        msg["From"] = cfg.from_address
        msg["To"] = ", ".join(cfg.ops_emails)
        msg["Subject"] = f"[newsletter] {subject}"
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain=cfg.from_address.rpartition("@")[2])
        msg.set_content(body, cte="8bit")
        from newsletter.delivery.smtp import SmtpConnection, settings_connection

        if cfg.alert_smtp_host:
            conn: Any = SmtpConnection(cfg.alert_smtp_host, cfg.alert_smtp_port, timeout=10)
        elif system_connect is not None:
            conn = system_connect()
        else:
            conn = settings_connection(cfg)
        from newsletter.core.safety.signing import bounce_address, system_bounce_token
        from newsletter.delivery.dkim import sign_system_mail

        data = sign_system_mail(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
        envelope = bounce_address(system_bounce_token())
        try:
            for rcpt in cfg.ops_emails:
                outcome = conn.send(envelope, rcpt, data)
                if outcome.state != "sent":
                    log.warning("ops notification to %s not sent: %s", rcpt, outcome.reply)
        finally:
            conn.close()
    return True


def _duplicate(session: Session, action: str, key: str, digest: str, *, once: bool) -> bool:
    if once:
        if not key:
            return False
        found = select(AuditLog.id).where(AuditLog.action == action, AuditLog.target == key)
        return session.scalar(found.limit(1)) is not None
    window = get_settings().alert_dedupe_seconds
    if window <= 0:
        return False
    since = utcnow() - dt.timedelta(seconds=window)
    recent = session.scalars(
        select(AuditLog.detail).where(
            AuditLog.action == action, AuditLog.target == key[:200], AuditLog.at >= since
        )
    )
    return any((d or {}).get("digest") == digest for d in recent)


def _post_webhook(url: str, event: str, subject: str, body: str) -> None:
    import httpx

    text = f"[newsletter] {subject}\n{body}"
    payload = {
        "msgtype": "text",
        "text": {"content": text},  # WeCom, DingTalk
        "event": event,
        "subject": subject,
        "body": body,
    }
    from urllib.parse import urlsplit

    from newsletter.core.safety.pinned import pinned_client
    from newsletter.core.safety.urlpolicy import resolves_public

    # Connect to the address checked: a webhook configured on a public address stays on
    # public ones (a name that rebinds to an internal address is refused); one the
    # operator configured on an internal address may be reached there.
    public = resolves_public(urlsplit(url).hostname or "") is True
    try:
        with pinned_client(allow_private=not public, timeout=5.0) as http:
            r = http.post(url, json=payload)
        if r.status_code >= 300:
            log.warning("alert webhook answered HTTP %s", r.status_code)
    except httpx.HTTPError as exc:
        log.warning("alert webhook not reached: %s", type(exc).__name__)


def _install_seal_alerts() -> None:
    """A broken seal (:mod:`newsletter.issues.seal`) is alerted like any notification."""
    from newsletter.issues import seal

    seal.alert_sender = notify


_install_seal_alerts()
