"""SQLAlchemy 2.0 typed models: the ledger.

The constraints here enforce the invariants of docs/architecture.md even when
application code has bugs:

* ``UNIQUE (publication_id, number)`` on issues;
* ``PRIMARY KEY (subscriber_id, list_id)`` on subscriptions;
* one suppression row per address (``UNIQUE (email)``);
* ``UNIQUE (send_id, subscriber_id)`` on deliveries: a subscriber is planned
  at most once per send, so re-planning is a no-op;
* ``UNIQUE (publication_id, channel, slot)`` on sends: two sends cannot take
  the same weekly slot;
* ``UNIQUE (uid)`` on events: an event ingested twice is stored once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from newsletter.core import clock
from newsletter.core.safety.headers import clean_text

__all__ = [
    "AuditLog",
    "Base",
    "Delivery",
    "Event",
    "Issue",
    "Job",
    "Link",
    "MailingList",
    "Publication",
    "Rendition",
    "RollupHourly",
    "RateCounter",
    "RelayState",
    "WarmupCount",
    "WarmupPlan",
    "RollupLink",
    "Segment",
    "Send",
    "Subscriber",
    "Subscription",
    "Suppression",
    "utcnow",
]


def utcnow() -> dt.datetime:
    """The product's clock (``core.clock.now``), the default of every timestamp column."""
    return clock.now()


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSONType}


# -- content ---------------------------------------------------------------


class Publication(Base):
    __tablename__ = "publication"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    from_name: Mapped[str] = mapped_column(String(200))
    from_address: Mapped[str] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    list_id_domain: Mapped[str] = mapped_column(String(255))
    postal_address: Mapped[str] = mapped_column(String(500), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    #: Weekly slot: ISO weekday (1 = Monday) and local time "HH:MM"; NULL = no schedule.
    schedule_weekday: Mapped[int | None] = mapped_column(Integer)
    schedule_time: Mapped[str | None] = mapped_column(String(5))
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True)
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True)
    # tracking: raw events older than this many days are purged (rollups stay); 0 = keep.
    event_retention_days: Mapped[int] = mapped_column(Integer, default=180)
    # tracking: "hash" keeps a salted hash of the /24 or /48; "none" keeps no IP data at all.
    ip_handling: Mapped[str] = mapped_column(String(8), default="hash")
    default_list_id: Mapped[int | None] = mapped_column(ForeignKey("mailing_list.id"))
    #: OpenCC table of the zh-Hant edition: s2t (default: keeps mainland vocabulary),
    #: s2hk or s2tw; an issue's own ``zh_hant`` front matter wins.
    zh_hant_table: Mapped[str] = mapped_column(String(8), default="s2t", server_default="s2t")
    #: Four-eyes: the uploader and the last editor of an issue cannot approve it.
    four_eyes: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @validates("name", "from_name", "from_address", "reply_to", "list_id_domain", "postal_address")
    def _header_text(self, key: str, value: str | None) -> str | None:
        """These end up in mail headers: one line, no control characters (issue 14, F3)."""
        if value is None:
            return None
        return clean_text(value, 500 if key == "postal_address" else 320)


class Issue(Base):
    __tablename__ = "issue"
    __table_args__ = (
        UniqueConstraint("publication_id", "number", name="uq_issue_publication_number"),
        CheckConstraint(
            "status IN ('draft','in_review','approved','scheduled','sent')", name="ck_issue_status"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publication.id"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    period: Mapped[str] = mapped_column(String(200), default="")
    source_text: Mapped[str] = mapped_column(Text, deferred=True)  # large: loaded on access
    source_hash: Mapped[str] = mapped_column(String(64))
    base_dir: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    approved_by: Mapped[str | None] = mapped_column(String(320))
    approved_at: Mapped[dt.datetime | None]
    #: Who uploaded the issue, and who last changed it (migration ``0010``); the
    #: four-eyes rule keeps both from approving it. None: not known (a CLI run
    #: without ``--by``).
    created_by: Mapped[str | None] = mapped_column(String(320))
    updated_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Rendition(Base):
    """One rendered output of an issue, cached; the hash proves what was sent."""

    __tablename__ = "rendition"
    __table_args__ = (UniqueConstraint("issue_id", "variant", "output", name="uq_rendition"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(8))
    output: Mapped[str] = mapped_column(String(32))  # email_html, email_text, wechat-1, web
    source_hash: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    size_chars: Mapped[int] = mapped_column(Integer)
    renderer_version: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str | None] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ArchiveEntry(Base):
    """What the public archive searches: one row per issue (``anchor`` empty) and per
    item, per variant, in plain text.  Written with the renditions; which rows are
    public is decided at query time by the issue's status (only ``sent``)."""

    __tablename__ = "archive_entry"
    __table_args__ = (Index("ix_archive_entry_issue", "issue_id", "variant"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(Integer, default=0)
    anchor: Mapped[str] = mapped_column(String(64), default="")
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")


class Link(Base):
    """issue × position → URL. Click tracking resolves link ids here, never from a request."""

    __tablename__ = "link"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(String(500), default="")


# -- audience --------------------------------------------------------------


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
        """The name goes into ``To:``: one line, no control characters (issue 14, F3)."""
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


# -- sending ---------------------------------------------------------------

SEND_STATES = (
    "draft",
    "scheduled",
    "planning",
    "sending",
    "paused",
    "finished",
    "cancelled",
    "failed",
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
    next_probe_at: Mapped[dt.datetime | None]
    probe_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Delivery(Base):
    """send × subscriber: exactly one row, whose state is the truth."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("send_id", "subscriber_id", name="uq_delivery_send_subscriber"),
        Index("ix_delivery_claim", "send_id", "state", "next_attempt_at"),
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


# -- events and statistics -------------------------------------------------


class Event(Base):
    """Append-only record of opens, clicks, unsubscribes, bounces and complaints."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_send_kind", "send_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: Idempotency key assigned where the event was first seen (stream id or uuid).
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    send_id: Mapped[int | None] = mapped_column(Integer)
    delivery_id: Mapped[int | None] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(24))
    link_position: Mapped[int | None] = mapped_column(Integer)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    cls: Mapped[str] = mapped_column(String(8), default="unknown")
    rule: Mapped[str | None] = mapped_column(String(64))
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class RollupHourly(Base):
    """send × hour × kind × class: totals and unique counts, kept as events arrive."""

    __tablename__ = "rollup_hourly"

    send_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    cls: Mapped[str] = mapped_column(String(8), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    uniq: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupLink(Base):
    __tablename__ = "rollup_link"

    send_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_position: Mapped[int] = mapped_column(Integer, primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    uniq: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    remote: Mapped[str | None] = mapped_column(String(64))


class Segment(Base):
    """A saved audience filter, stored as a JSON definition (never SQL); see audience/segments.py."""

    __tablename__ = "segment"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RateCounter(Base):
    """Fixed-window counters for rate limits that must work without Redis (subscribe forms)."""

    __tablename__ = "rate_counter"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


# -- relays and warm-up (migration 0014) --------------------------------------


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


# -- background jobs -----------------------------------------------------------

JOB_KINDS = ("import", "bulk")
JOB_STATES = ("queued", "running", "done", "failed", "interrupted")


class Job(Base):
    """Long work handed to a worker (a subscriber import, a bulk action over a search or a
    segment): who started it, how far it got and how it ended.

    The worker writes ``done`` (and ``cursor``, the last subscriber id a bulk job has
    finished) with every batch, in the batch's own transaction, and ``heartbeat_at``
    with it; a ``running`` job whose heartbeat is old was killed and is shown as
    ``interrupted`` (it can be resumed: a bulk job from its cursor, an import from the
    start, which converges because imports are idempotent).
    """

    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint("kind IN ('import','bulk')", name="ck_job_kind"),
        CheckConstraint(
            "state IN ('queued','running','done','failed','interrupted')", name="ck_job_state"
        ),
        Index("ix_job_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    actor: Mapped[str] = mapped_column(String(320))
    title: Mapped[str] = mapped_column(String(300), default="")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The stored upload (imports), relative to the var directory.
    file: Mapped[str | None] = mapped_column(String(500))
    total: Mapped[int | None] = mapped_column(BigInteger)
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    changed: Mapped[int] = mapped_column(BigInteger, default=0)
    cursor: Mapped[int | None] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
