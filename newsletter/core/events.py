"""Event webhooks: the endpoints, the durable outbox and the log of attempts.

Every domain records an event through :func:`emit`, in the same transaction as the
change it reports (a delivery marked sent, a bounce stored, an unsubscribe, a human
open or click ingested, a send finished, an issue approved): the outbox row exists
exactly when the change does. One row is written per endpoint that asked for the
event's type; ``delivery.eventhooks`` sends them, signed, in order per endpoint.

Payloads carry ids and codes, and the subscriber's address where the event is about a
subscriber; nothing else personal. ``docs/operations.md`` lists each type's schema.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.core.orm import Base, BigId, JSONType, utcnow

__all__ = [
    "EVENT_TYPES",
    "WebhookAttempt",
    "WebhookEndpoint",
    "WebhookOutbox",
    "emit",
    "listening",
    "new_message_id",
]

#: Every event type an endpoint can ask for (the Standard Webhooks ``type``).
EVENT_TYPES = (
    "message.delivered",
    "message.bounced",
    "message.complained",
    "message.opened",
    "message.clicked",
    "subscriber.unsubscribed",
    "send.finished",
    "issue.approved",
)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    #: the event types this endpoint receives
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    #: ``whsec_…`` encrypted with the secret key (``core.safety.secretbox``)
    secret: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: why it was turned off (``failing``: 24 h without a successful delivery)
    disabled_reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    #: one sender at a time per endpoint (so its events go out in order)
    lease_until: Mapped[dt.datetime | None]


class WebhookOutbox(Base):
    """One event for one endpoint: pending until its endpoint answered 2xx."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (Index("ix_webhook_outbox_endpoint_state", "endpoint_id", "state", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    #: the ``webhook-id`` header: the same on every retry (receivers deduplicate by it)
    msg_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(40))
    subscriber_id: Mapped[int | None] = mapped_column(BigId)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: pending | delivered | failed (no 2xx within 24 hours)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]


class WebhookAttempt(Base):
    """One HTTP attempt: its status code (None: no answer) and a short error."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (Index("ix_webhook_attempt_endpoint", "endpoint_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhook_outbox.id", ondelete="CASCADE")
    )
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(300), default="")
    ms: Mapped[int] = mapped_column(Integer, default=0)


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(16)


#: the active endpoints and what they asked for (built once; a Core statement, which
#: costs far less a call than the ORM's: the send loop asks once a group)
_ACTIVE = select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.active.is_(True))


def listening(session: Session, type_: str) -> list[int]:
    """The active endpoints that asked for events of ``type_``, read in the caller's
    transaction (so an endpoint added before it is never missed)."""
    assert type_ in EVENT_TYPES, type_
    return [eid for eid, events in session.connection().execute(_ACTIVE) if type_ in (events or [])]


def emit(
    session: Session,
    type_: str,
    items: list[tuple[dict[str, Any], int | None]],
    *,
    endpoints: list[int] | None = None,
) -> int:
    """Queue events of ``type_`` (each: data, subscriber id or None) for every active
    endpoint that asked for it (``endpoints``, when the caller has just read them with
    :func:`listening`), in the caller's transaction. Returns the rows written."""
    assert type_ in EVENT_TYPES, type_
    if not items:
        return 0
    if endpoints is None:
        endpoints = listening(session, type_)
    if not endpoints:
        return 0
    now = utcnow()
    stamp = now.isoformat().replace("+00:00", "Z")
    rows = []
    for data, subscriber_id in items:
        payload = {"type": type_, "timestamp": stamp, "data": data}
        for eid in endpoints:
            rows.append(
                {
                    "endpoint_id": eid,
                    "msg_id": new_message_id(),
                    "type": type_,
                    "subscriber_id": subscriber_id,
                    "payload": payload,
                    "created_at": now,
                    "state": "pending",
                    "attempts": 0,
                    "next_at": now,
                }
            )
    session.execute(insert(WebhookOutbox), rows)
    return len(rows)
