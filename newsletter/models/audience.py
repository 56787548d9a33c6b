"""Subscribers, lists, subscriptions, suppressions and saved segments."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, validates

from newsletter.core.orm import Base, BigId, utcnow
from newsletter.core.safety.headers import clean_text


class Subscriber(Base):
    __tablename__ = "subscriber"
    __table_args__ = (
        CheckConstraint("variant IN ('zh-Hans','zh-Hant')", name="ck_subscriber_variant"),
        CheckConstraint("status IN ('active','blocked','erased')", name="ck_subscriber_status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    variant: Mapped[str] = mapped_column(String(8), default="zh-Hans")
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    source: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[dt.datetime | None]

    @validates("name")
    def _header_text(self, key: str, value: str) -> str:
        """The name goes into ``To:``: one line, no control characters (F3)."""
        return clean_text(value, 200)


class MailingList(Base):
    __tablename__ = "mailing_list"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(1000), default="")
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @validates("name")
    def _header_text(self, key: str, value: str) -> str:
        """List names go into the opt-in mail's subject: one line, no controls."""
        return clean_text(value, 200)


class Subscription(Base):
    __tablename__ = "subscription"
    __table_args__ = (
        CheckConstraint(
            "status IN ('unconfirmed','active','unsubscribed')", name="ck_subscription_status"
        ),
        Index("ix_subscription_list_status", "list_id", "status"),
    )

    subscriber_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[int] = mapped_column(
        ForeignKey("mailing_list.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    unsubscribed_at: Mapped[dt.datetime | None]
    reason: Mapped[str | None] = mapped_column(String(200))
    #: When the opt-in of this list was last confirmed (migration ``0025``): the welcome
    #: series counts its delays from here.
    confirmed_at: Mapped[dt.datetime | None]


class Suppression(Base):
    """One row per address: never mail it again, from any send."""

    __tablename__ = "suppression"
    __table_args__ = (
        CheckConstraint(
            "reason IN ('hard_bounce','complaint','unsubscribe_all','manual')",
            name="ck_suppression_reason",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: Normalised address, or ``sha256:<hex>`` after erasure.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(String(1000), default="")
    delivery_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Segment(Base):
    """A saved audience filter, stored as a JSON definition (never SQL); see audience/segments.py."""

    __tablename__ = "segment"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
