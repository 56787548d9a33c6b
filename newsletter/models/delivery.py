"""Sends and their deliveries (the ledger), relay health and warm-up."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.core.orm import Base, BigId, JSONType, utcnow

SEND_STATES = (
    "draft",
    "scheduled",
    "planning",
    "sending",
    "paused",
    "finished",
    "cancelled",
    "failed",
    "empty",  # nobody the send may reach: nothing sent, the issue not marked sent (0018)
)


DELIVERY_STATES = ("queued", "sending", "sent", "deferred", "bounced", "failed", "skipped")


class Send(Base):
    __tablename__ = "send"
    __table_args__ = (
        UniqueConstraint("publication_id", "channel", "slot", name="uq_send_slot"),
        CheckConstraint("channel IN ('email','wechat')", name="ck_send_channel"),
        CheckConstraint(
            "state IN (" + ",".join(f"'{s}'" for s in SEND_STATES) + ")", name="ck_send_state"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publication.id"))
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id"))
    channel: Mapped[str] = mapped_column(String(16), default="email")
    list_id: Mapped[int | None] = mapped_column(ForeignKey("mailing_list.id"))
    #: Optional saved segment that narrows the list's audience.
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segment.id"))
    #: "preference" (subscriber's choice), "zh-Hans" or "zh-Hant".
    variant_rule: Mapped[str] = mapped_column(String(16), default="preference")
    state: Mapped[str] = mapped_column(String(16), default="draft")
    #: The weekly slot this send fills, e.g. "2026-11-30T09:00+08:00"; NULL for ad-hoc sends.
    slot: Mapped[str | None] = mapped_column(String(40))
    scheduled_at: Mapped[dt.datetime | None]
    #: Subject test (see delivery/subjects.py): 2–4 subjects, the first one the default.
    subject_variants: Mapped[list[str] | None] = mapped_column(JSONType)
    test_share: Mapped[int] = mapped_column(Integer, default=20, server_default="20")
    test_wait_seconds: Mapped[int] = mapped_column(Integer, default=14400, server_default="14400")
    test_metric: Mapped[str] = mapped_column(String(8), default="opens", server_default="opens")
    test_decide_at: Mapped[dt.datetime | None]
    test_winner: Mapped[int | None] = mapped_column(Integer)
    test_report: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    planned_count: Mapped[int] = mapped_column(Integer, default=0)
    excluded_count: Mapped[int] = mapped_column(Integer, default=0)
    #: List members skipped because another send of this issue on this channel
    #: already reached them or is reaching them (migration ``0008``).
    already_received: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Set only by an explicit, audited resend: such a send plans everyone again.
    resend_reason: Mapped[str | None] = mapped_column(Text)
    #: Set while the send is paused because the relay could not be reached: the
    #: relay is probed with back-off and the send resumes when it answers.
    auto_paused_at: Mapped[dt.datetime | None]
    #: What that pause probes (migration ``0017``): "relay" (connect) or "4xx" (a test
    #: RCPT); NULL is probed as "relay".
    auto_pause_kind: Mapped[str | None] = mapped_column(String(8))
    next_probe_at: Mapped[dt.datetime | None]
    probe_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    #: "issue" (a weekly or ad-hoc send) or "welcome" (one welcome step's standing send,
    #: migration ``0025``): a welcome send stays ``sending`` and never finishes.
    kind: Mapped[str] = mapped_column(String(8), default="issue", server_default="issue")
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WelcomeStep(Base):
    """One step of a list's welcome series (at most five per list).

    Its content is a hidden issue (``issue.kind = 'welcome'``), rendered by the same
    renderers in both scripts; its deliveries are the rows of its own standing send
    (``send.kind = 'welcome'``), so ``UNIQUE (send_id, subscriber_id)`` makes it once
    per subscriber and step.  ``delay_seconds`` counts from the subscriber's
    confirmation; only subscribers who confirm after ``created_at`` are welcomed.
    """

    __tablename__ = "welcome_step"
    __table_args__ = (
        UniqueConstraint("list_id", "position", name="uq_welcome_step_position"),
        CheckConstraint("delay_seconds >= 0", name="ck_welcome_step_delay"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("mailing_list.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    delay_seconds: Mapped[int] = mapped_column(Integer, default=0)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id"))
    send_id: Mapped[int] = mapped_column(ForeignKey("send.id"))
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Delivery(Base):
    """send × subscriber: exactly one row, whose state is the truth."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("send_id", "subscriber_id", name="uq_delivery_send_subscriber"),
        Index("ix_delivery_claim", "send_id", "state", "next_attempt_at"),
        Index("ix_delivery_subscriber", "subscriber_id", "id"),
        # a batch's rows, by its claim token (migration 0027): only claimed rows
        Index(
            "ix_delivery_claimed",
            "claimed_by",
            postgresql_where=text("claimed_by IS NOT NULL"),
            sqlite_where=text("claimed_by IS NOT NULL"),
        ),
        CheckConstraint(
            "state IN (" + ",".join(f"'{s}'" for s in DELIVERY_STATES) + ")",
            name="ck_delivery_state",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    send_id: Mapped[int] = mapped_column(ForeignKey("send.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(BigId, ForeignKey("subscriber.id"))
    variant: Mapped[str] = mapped_column(String(8), default="zh-Hans")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[dt.datetime | None]
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_reply: Mapped[str | None] = mapped_column(String(1000))
    message_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[dt.datetime | None]
    first_open_at: Mapped[dt.datetime | None]
    first_click_at: Mapped[dt.datetime | None]
    #: Set when a lease expired while the delivery was inside an SMTP transaction.
    at_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Subject test: index into ``send.subject_variants`` (NULL: the default subject, or,
    #: in a subject test, held back until the winner is known).
    subject_idx: Mapped[int | None] = mapped_column(Integer)
    #: Subject test: True for the random test share.
    subject_test: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The relay (by name) of the last attempt: the one that carried a sent delivery.
    relay: Mapped[str | None] = mapped_column(String(64))


class RelayState(Base):
    """A relay taken out of service (``down_since`` set) and its probes; no row: in service."""

    __tablename__ = "relay_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    down_since: Mapped[dt.datetime | None]
    next_probe_at: Mapped[dt.datetime | None]
    probe_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Times taken out in a row without staying up for long (lengthens the probe gap).
    flaps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_up_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))


class WarmupPlan(Base):
    """A sending domain's warm-up ramp, set with `newsletter warmup set` (overrides settings)."""

    __tablename__ = "warmup_plan"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: Messages per day: day 0, day 1, …; the last value holds after the end.
    schedule: Mapped[list[int] | None] = mapped_column(JSONType)
    #: First day of the ramp (ISO date in ``warmup_timezone``); NULL: set at first use.
    start_day: Mapped[str | None] = mapped_column(String(10))
    #: Recipient domain -> largest share of a day's allowance, e.g. {"gmail.com": 0.3}.
    shares: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WarmupCount(Base):
    """Messages handed to a relay per (sending domain, day, recipient domain; '*' = all)."""

    __tablename__ = "warmup_count"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    rcpt_domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
