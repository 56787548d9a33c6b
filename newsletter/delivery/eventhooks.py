"""Send the event webhooks of the outbox (``core.events``), signed, in order, with retries.

* **Signature** (Standard Webhooks): headers ``webhook-id`` (the outbox row's message
  id, the same on every retry), ``webhook-timestamp`` (seconds) and ``webhook-signature``
  ``v1,<base64 HMAC-SHA256 over "id.timestamp.body">``, keyed by the base64 part of the
  endpoint's ``whsec_`` secret.
* **Order**: one sender at a time per endpoint (a lease on the endpoint row) takes its
  pending rows in the order they were written and stops at the first failure, so the
  events of a subscriber (indeed all of an endpoint's events) arrive in order.
* **Retries**: a failure (no answer within 10 s, a redirect, a status other than 2xx)
  waits 30 s, then twice as long each time, at most 2 hours, for 24 hours after the
  event; then the row is ``failed``, the endpoint is turned off and ops are alerted.
* **Addresses**: the URL is resolved once per request and every address must be a
  public one (``NEWSLETTER_WEBHOOK_ALLOW_PRIVATE`` lifts that for an intranet); the
  connection goes to the checked address (``core.safety.pinned``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError, NotFound
from newsletter.core.events import EVENT_TYPES, WebhookAttempt, WebhookEndpoint, WebhookOutbox
from newsletter.core.safety.pinned import pinned_client
from newsletter.core.safety.secretbox import box_text, unbox_text
from newsletter.core.safety.urlpolicy import resolves_public
from newsletter.models import utcnow

__all__ = [
    "RETRY_FOR",
    "create_endpoint",
    "deliver_due",
    "endpoint_row",
    "sign",
]

log = logging.getLogger(__name__)

PURPOSE = "webhook-secret"
RETRY_FOR = dt.timedelta(hours=24)
FIRST_WAIT, MAX_WAIT = 30, 7200
LEASE = dt.timedelta(seconds=120)
TIMEOUT = 10.0


class WebhookError(NewsletterError):
    """An endpoint's settings were refused."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for ``body`` (Standard Webhooks, scheme v1)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def wait_after(attempts: int) -> dt.timedelta:
    """30 s after the first failure, doubling, at most 2 hours."""
    return dt.timedelta(seconds=min(MAX_WAIT, FIRST_WAIT * 2 ** min(attempts - 1, 20)))


# -- endpoints -----------------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an endpoint (zh/en), or None."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "地址必须是 http(s)://主机/… / the URL must be http(s)://host/…"
    if any(c in url for c in "\r\n\t\x00 ") or parts.username or parts.password:
        return "地址格式不正确 / the URL is malformed"
    if get_settings().webhook_allow_private:
        return None
    public = resolves_public(parts.hostname, parts.port or 443)
    if public is None:
        return f"{parts.hostname} 无法解析 / {parts.hostname} does not resolve"
    if not public:
        return (
            f"{parts.hostname} 解析到非公网地址，已拒绝 / {parts.hostname} resolves to a "
            "non-public address; refused"
        )
    return None


def _events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown or not events:
        raise WebhookError(
            f"事件类型无效 / unknown or no event types: {', '.join(unknown) or '-'}; "
            f"choose from {', '.join(EVENT_TYPES)}"
        )
    return [e for e in EVENT_TYPES if e in events]


def endpoint_row(e: WebhookEndpoint, s: Session | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": e.id,
        "url": e.url,
        "description": e.description,
        "events": list(e.events or []),
        "active": e.active,
        "disabled_reason": e.disabled_reason,
        "created_at": e.created_at.isoformat(),
        "created_by": e.created_by,
    }
    if s is not None:
        from sqlalchemy import func

        counts = dict(
            s.execute(
                select(WebhookOutbox.state, func.count())
                .where(WebhookOutbox.endpoint_id == e.id)
                .group_by(WebhookOutbox.state)
            ).all()
        )
        row["pending"] = int(counts.get("pending", 0))
        row["delivered"] = int(counts.get("delivered", 0))
        row["failed"] = int(counts.get("failed", 0))
    return row


def create_endpoint(
    s: Session, url: str, events: list[str], actor: str, description: str = "", secret: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (given, or made here; shown once)."""
    problem = url_problem(url)
    if problem:
        raise WebhookError(problem)
    if secret:
        try:
            raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            raw = b""
        if not secret.startswith("whsec_") or len(raw) < 24:
            raise WebhookError(
                "密钥须为 whsec_ 加至少 24 字节的 base64 / the secret must be whsec_ and "
                "base64 of at least 24 bytes"
            )
    secret = secret or new_secret()
    e = WebhookEndpoint(
        url=url.strip(),
        description=description.strip()[:200],
        events=_events(events),
        secret=box_text(secret, PURPOSE),
        active=True,
        disabled_reason="",
        created_by=actor[:320],
    )
    s.add(e)
    s.flush()
    return e, secret


def update_endpoint(
    s: Session,
    endpoint_id: int,
    *,
    url: str | None = None,
    events: list[str] | None = None,
    active: bool | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    e = s.get(WebhookEndpoint, endpoint_id)
    if e is None:
        raise NotFound("webhook endpoint not found / 未找到该 Webhook")
    if url is not None and url.strip() != e.url:
        problem = url_problem(url)
        if problem:
            raise WebhookError(problem)
        e.url = url.strip()
    if events is not None:
        e.events = _events(events)
    if description is not None:
        e.description = description.strip()[:200]
    if active is not None:
        e.active = active
        if active:  # back on: its waiting events go out at the next round
            e.disabled_reason = ""
            s.execute(
                update(WebhookOutbox)
                .where(WebhookOutbox.endpoint_id == e.id, WebhookOutbox.state == "pending")
                .values(next_at=utcnow())
            )
    return e


def attempts(s: Session, endpoint_id: int, limit: int = 100) -> list[dict[str, Any]]:
    rows = s.execute(
        select(WebhookAttempt, WebhookOutbox.msg_id, WebhookOutbox.type, WebhookOutbox.state)
        .join(WebhookOutbox, WebhookOutbox.id == WebhookAttempt.outbox_id)
        .where(WebhookAttempt.endpoint_id == endpoint_id)
        .order_by(WebhookAttempt.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "at": a.at.isoformat(),
            "msg_id": msg_id,
            "type": type_,
            "status": a.status,
            "ok": a.status is not None and 200 <= a.status < 300,
            "error": a.error,
            "ms": a.ms,
            "state": state,
        }
        for a, msg_id, type_, state in rows
    ]


# -- sending -------------------------------------------------------------------------


def _claim(endpoint_id: int, now: dt.datetime) -> bool:
    with session_scope() as s:
        got = s.execute(
            update(WebhookEndpoint)
            .where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.active.is_(True),
                or_(WebhookEndpoint.lease_until.is_(None), WebhookEndpoint.lease_until < now),
            )
            .values(lease_until=now + LEASE)
            .returning(WebhookEndpoint.id)
        ).first()
        return got is not None


def _release(endpoint_id: int) -> None:
    with session_scope() as s:
        s.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(lease_until=None)
        )


def _post(
    client: httpx.Client, url: str, secret: str, row: WebhookOutbox
) -> tuple[int | None, str]:
    body = json.dumps(row.payload, ensure_ascii=False, separators=(",", ":")).encode()
    ts = int(utcnow().timestamp())
    headers = {
        "content-type": "application/json",
        "user-agent": "newsletter-webhooks/1",
        "webhook-id": row.msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, row.msg_id, ts, body),
    }
    try:
        r = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:300]
    if 200 <= r.status_code < 300:
        return r.status_code, ""
    return r.status_code, f"HTTP {r.status_code}"


def _run_endpoint(endpoint_id: int, limit: int) -> int:
    """Send this endpoint's due rows in order until one fails; returns how many went."""
    sent = 0
    with session_scope() as s:
        e = s.get(WebhookEndpoint, endpoint_id)
        if e is None:
            return 0
        url, secret = e.url, unbox_text(e.secret, PURPOSE)
    allow_private = get_settings().webhook_allow_private
    with pinned_client(
        allow_private=allow_private, timeout=TIMEOUT, follow_redirects=False
    ) as client:
        while sent < limit:
            now = utcnow()
            with session_scope() as s:
                row = s.scalar(
                    select(WebhookOutbox)
                    .where(
                        WebhookOutbox.endpoint_id == endpoint_id,
                        WebhookOutbox.state == "pending",
                    )
                    .order_by(WebhookOutbox.id)
                    .limit(1)
                )
                if row is None or row.next_at > now:
                    return sent  # nothing left, or the oldest waits: order holds the rest
                s.expunge(row)
            started = time.perf_counter()
            status, error = _post(client, url, secret, row)
            ms = int((time.perf_counter() - started) * 1000)
            ok = status is not None and not error
            with session_scope() as s:
                s.add(
                    WebhookAttempt(
                        outbox_id=row.id,
                        endpoint_id=endpoint_id,
                        at=now,
                        status=status,
                        error=error,
                        ms=ms,
                    )
                )
                live = s.get(WebhookOutbox, row.id)
                assert live is not None
                live.attempts += 1
                s.execute(
                    update(WebhookEndpoint)
                    .where(WebhookEndpoint.id == endpoint_id)
                    .values(lease_until=utcnow() + LEASE)
                )
                if ok:
                    live.state, live.delivered_at = "delivered", utcnow()
                    sent += 1
                    continue
                if now - live.created_at >= RETRY_FOR:
                    live.state = "failed"
                    _give_up(s, endpoint_id, url, live, error)
                    return sent
                live.next_at = now + wait_after(live.attempts)
                return sent
    return sent


def _give_up(s: Session, endpoint_id: int, url: str, row: WebhookOutbox, error: str) -> None:
    """24 hours without a 2xx: the endpoint is turned off and ops are told (once per
    endpoint and event)."""
    e = s.get(WebhookEndpoint, endpoint_id)
    assert e is not None
    e.active = False
    e.disabled_reason = f"failing: {error}"[:200]
    from newsletter.delivery.alerts import notify

    notify(
        s,
        "webhook_disabled",
        f"Webhook {endpoint_id} 已停用 / disabled",
        f"Webhook {endpoint_id}（{url}）24 小时内未能送达事件 {row.msg_id}，已停用；"
        f"修好接收方后在控制台重新启用。/ Webhook {endpoint_id} ({url}) could not take event "
        f"{row.msg_id} for 24 hours and was disabled; enable it again in the console once "
        f"the receiver works. Last error: {error}",
        key=f"webhook:{endpoint_id}:{row.msg_id}",
    )


def deliver_due(limit: int = 500) -> int:
    """One round: every active endpoint with a due event sends what it can, in order.
    Returns how many events were delivered. Run by beat (``newsletter.deliver_webhooks``)
    or, in the embedded mode, by the web process's background loop."""
    now = utcnow()
    with session_scope() as s:
        ids = s.scalars(
            select(WebhookOutbox.endpoint_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookOutbox.endpoint_id)
            .where(
                WebhookEndpoint.active.is_(True),
                WebhookOutbox.state == "pending",
                WebhookOutbox.next_at <= now,
            )
            .distinct()
        ).all()
    done = 0
    for endpoint_id in sorted(ids):
        if not _claim(endpoint_id, now):
            continue  # another sender has it
        try:
            done += _run_endpoint(endpoint_id, limit)
        except Exception:
            log.exception("webhook endpoint %s: round failed", endpoint_id)
        finally:
            _release(endpoint_id)
    return done
