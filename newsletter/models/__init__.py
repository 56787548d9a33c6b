"""SQLAlchemy 2.0 typed models: every table of the product, listed here by domain.

One module per domain, matching the migrations: ``issues``, ``audience``, ``delivery``,
``tracking`` (with the rollups of ``tracking_tables``), ``jobs``, ``wechat`` and
``console`` (users and API tokens). The tables of the base layer, ``audit_log``,
``rate_counter`` and the event webhooks' ``webhook_endpoint``, ``webhook_outbox`` and
``webhook_attempt``, are defined beside the code that owns them (``core.audit``,
``core.ratelimit``, ``core.events``) and listed here too.

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

from newsletter.core.audit import AuditLog
from newsletter.core.events import WebhookAttempt, WebhookEndpoint, WebhookOutbox
from newsletter.core.orm import Base, BigId, JSONType, UTCDateTime, utcnow
from newsletter.core.ratelimit import LoginThrottle, RateCounter
from newsletter.models.audience import MailingList, Segment, Subscriber, Subscription, Suppression
from newsletter.models.console import ApiToken, ConsoleSetting, RecoveryCode, User
from newsletter.models.delivery import (
    DELIVERY_STATES,
    SEND_STATES,
    Delivery,
    RelayState,
    Send,
    WarmupCount,
    WarmupPlan,
    WelcomeStep,
)
from newsletter.models.issues import (
    ArchiveEntry,
    ImportRule,
    Issue,
    IssueSeal,
    IssueVersion,
    Link,
    Publication,
    Rendition,
    ReviewNotice,
)
from newsletter.models.jobs import JOB_KINDS, JOB_STATES, Job
from newsletter.models.tracking import (
    Event,
    RollupHourly,
    RollupLink,
    RollupLinkCls,
    RollupSegment,
    SendAudience,
    TrackingFirst,
)
from newsletter.models.wechat import (
    WeChatArticleStat,
    WeChatAsset,
    WeChatPublication,
    WeChatToken,
)

__all__ = [
    "DELIVERY_STATES",
    "JOB_KINDS",
    "JOB_STATES",
    "SEND_STATES",
    "ArchiveEntry",
    "AuditLog",
    "WebhookAttempt",
    "WebhookEndpoint",
    "WebhookOutbox",
    "WelcomeStep",
    "Base",
    "BigId",
    "Delivery",
    "Event",
    "Issue",
    "ImportRule",
    "IssueSeal",
    "IssueVersion",
    "JSONType",
    "Job",
    "Link",
    "MailingList",
    "Publication",
    "LoginThrottle",
    "RateCounter",
    "RelayState",
    "Rendition",
    "ReviewNotice",
    "RollupHourly",
    "RollupLink",
    "Segment",
    "Send",
    "Subscriber",
    "Subscription",
    "Suppression",
    "UTCDateTime",
    "WarmupCount",
    "WarmupPlan",
    "ApiToken",
    "ConsoleSetting",
    "RecoveryCode",
    "User",
    "RollupLinkCls",
    "RollupSegment",
    "SendAudience",
    "TrackingFirst",
    "WeChatArticleStat",
    "WeChatAsset",
    "WeChatPublication",
    "WeChatToken",
    "utcnow",
]
