"""Publications and issues: the source, its renditions, archive entries and links."""

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
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, validates

from newsletter.core.orm import Base, JSONType, utcnow
from newsletter.core.safety.headers import clean_text


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
        """These end up in mail headers: one line, no control characters (F3)."""
        if value is None:
            return None
        return clean_text(value, 500 if key == "postal_address" else 320)


class IssueVersion(Base):
    """One version of an issue's source: every upload or edit that changed it."""

    __tablename__ = "issue_version"
    __table_args__ = (UniqueConstraint("issue_id", "version", name="uq_issue_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    source_text: Mapped[str] = mapped_column(Text)
    source_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ImportRule(Base):
    """A learnt house style: a correction kept as a pattern of the publication."""

    __tablename__ = "import_rule"
    __table_args__ = (
        UniqueConstraint("publication_id", "kind", "pattern", name="uq_import_rule_pattern"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publication.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # marker | line
    pattern: Mapped[str] = mapped_column(String(200))
    cls: Mapped[str] = mapped_column(String(16))
    example: Mapped[str] = mapped_column(String(200), default="", server_default="")
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


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
    #: The approved version (migration ``0016``): :class:`IssueSeal` ``version`` of this
    #: issue. None: not approved, or approved before sealing existed.
    sealed_version: Mapped[int | None] = mapped_column(Integer)
    #: "weekly" or "welcome" (a welcome step's content, migration ``0025``: numbered
    #: below zero, never listed, archived or scheduled).
    kind: Mapped[str] = mapped_column(String(8), default="weekly", server_default="weekly")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class IssueSeal(Base):
    """One approved version of an issue: what was approved is what goes out.

    ``digest`` is the seal: a SHA-256 over the source text, the renderer version and
    every asset the source references (kind, path as written, SHA-256 of the bytes),
    see :func:`newsletter.issues.seal.seal_digest`. The assets' bytes were copied at
    approval into the content-addressed store (``var/blobs/sha256/<aa>/<sha256>``);
    ``assets`` lists them. Rows are never changed: a new approval is a new version.
    """

    __tablename__ = "issue_seal"
    __table_args__ = (UniqueConstraint("issue_id", "version", name="uq_issue_seal_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    source_hash: Mapped[str] = mapped_column(String(64))
    renderer_version: Mapped[str] = mapped_column(String(32))
    #: [{"kind": "image" | "cover", "ref": path as written, "sha256": …, "size": bytes}]
    assets: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    sealed_by: Mapped[str] = mapped_column(String(320))
    sealed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


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


#: What a review notice says: an issue waits for review, was approved, or was sent back.
NOTICE_KINDS = ("ready", "approved", "sent_back")


class ReviewNotice(Base):
    """One person told about one step of an issue's review (migration 0024).

    Written in the transaction that took the step, so a notice exists exactly when the
    step does. The console lists a person's unread notices; ``delivery.notices`` mails
    each once to a person with an address (``emailed_at`` is claimed before sending).
    """

    __tablename__ = "review_notice"
    __table_args__ = (
        CheckConstraint(
            "kind IN (" + ",".join(f"'{k}'" for k in NOTICE_KINDS) + ")",
            name="ck_review_notice_kind",
        ),
        Index("ix_review_notice_recipient", "recipient", "read_at"),
        Index("ix_review_notice_unmailed", "emailed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(320), default="")
    note: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    read_at: Mapped[dt.datetime | None]
    #: set when the mail was claimed; ``mail_state`` says how it ended
    emailed_at: Mapped[dt.datetime | None]
    #: "" (not mailed yet), sent, no_address (the person has none), failed
    mail_state: Mapped[str] = mapped_column(String(16), default="")
