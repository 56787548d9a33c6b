"""Console services for event webhooks (admin): endpoints and the log of attempts."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import select

from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound
from newsletter.core.events import WebhookEndpoint
from newsletter.delivery import eventhooks
from newsletter.web.console.auth import Principal, record

__all__ = [
    "create_webhook",
    "delete_webhook",
    "update_webhook",
    "webhook",
    "webhook_attempts",
    "webhooks",
]


def webhooks() -> list[dict[str, Any]]:
    with session_scope() as s:
        rows = s.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))
        return [eventhooks.endpoint_row(e, s) for e in rows]


def webhook(endpoint_id: int) -> dict[str, Any]:
    with session_scope() as s:
        e = s.get(WebhookEndpoint, endpoint_id)
        if e is None:
            raise NotFound("webhook endpoint not found / 未找到该 Webhook")
        return eventhooks.endpoint_row(e, s)


def webhook_attempts(endpoint_id: int, limit: int = 100) -> list[dict[str, Any]]:
    webhook(endpoint_id)
    with session_scope() as s:
        return eventhooks.attempts(s, endpoint_id, limit)


def create_webhook(
    actor: Principal,
    url: str,
    events: list[str],
    description: str = "",
    secret: str = "",
    request: Request | None = None,
) -> dict[str, Any]:
    """The new endpoint, with its secret (shown once)."""
    with session_scope() as s:
        e, secret = eventhooks.create_endpoint(s, url, events, actor.username, description, secret)
        record(s, actor, "webhook.create", f"webhook:{e.id}", request, url=e.url, events=e.events)
        return {**eventhooks.endpoint_row(e, s), "secret": secret}


def update_webhook(
    actor: Principal,
    endpoint_id: int,
    *,
    url: str | None = None,
    events: list[str] | None = None,
    active: bool | None = None,
    description: str | None = None,
    request: Request | None = None,
) -> dict[str, Any]:
    with session_scope() as s:
        e = eventhooks.update_endpoint(
            s, endpoint_id, url=url, events=events, active=active, description=description
        )
        detail = {
            k: v
            for k, v in {"url": url, "events": events, "active": active}.items()
            if v is not None
        }
        record(s, actor, "webhook.update", f"webhook:{e.id}", request, **detail)
        return eventhooks.endpoint_row(e, s)


def delete_webhook(actor: Principal, endpoint_id: int, request: Request | None = None) -> None:
    with session_scope() as s:
        e = s.get(WebhookEndpoint, endpoint_id)
        if e is None:
            raise NotFound("webhook endpoint not found / 未找到该 Webhook")
        record(s, actor, "webhook.delete", f"webhook:{e.id}", request, url=e.url)
        s.delete(e)
