"""Tables of the WeChat channel (migration ``0002``).

* ``wechat_asset``: one row per (account, content hash, kind): an image is
  uploaded to an account once, ever. ``kind`` is ``content`` (uploadimg URL) or
  ``thumb`` (permanent material, ``media_id``).
* ``wechat_publication``: one row per wechat-channel send (``UNIQUE send_id``):
  the state of every step, so that a re-run resumes where the last one stopped.
* ``wechat_article_stat``: one row per (message, article index, date), upserted
  by the daily statistics sync.
* ``wechat_token`` (migration ``0018``): the access token shared through the database
  when there is no Redis: one row per account key, refreshed under the row's lock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.core.orm import Base, utcnow

__all__ = [
    "PUBLICATION_STATES",
    "WeChatArticleStat",
    "WeChatAsset",
    "WeChatPublication",
    "WeChatToken",
]

#: In order. ``failed`` may follow any of them; a re-run with ``retry`` resumes.
PUBLICATION_STATES = (
    "new",
    "assets",
    "drafting",
    "drafted",
    "submitting",
    "publishing",
    "published",
    "mass_sending",
    "mass_sent",
    "done",
    "failed",
)


class WeChatAsset(Base):
    __tablename__ = "wechat_asset"
    __table_args__ = (UniqueConstraint("appid", "sha256", "kind", name="uq_wechat_asset"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appid: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text, default="")
    media_id: Mapped[str | None] = mapped_column(String(128))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WeChatPublication(Base):
    __tablename__ = "wechat_publication"

    id: Mapped[int] = mapped_column(primary_key=True)
    send_id: Mapped[int] = mapped_column(ForeignKey("send.id", ondelete="CASCADE"), unique=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id"))
    appid: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    variant: Mapped[str] = mapped_column(String(8), default="zh-Hans")
    state: Mapped[str] = mapped_column(String(16), default="new")
    #: The step that failed (a state name) when ``state == 'failed'``.
    failed_step: Mapped[str | None] = mapped_column(String(16))
    clientmsgid: Mapped[str] = mapped_column(String(64))
    article_count: Mapped[int] = mapped_column(Integer, default=0)
    article_titles: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: sha256 of the draft/add payload: finds our draft again after a crash.
    draft_fingerprint: Mapped[str | None] = mapped_column(String(64))
    draft_media_id: Mapped[str | None] = mapped_column(String(128))
    publish_id: Mapped[str | None] = mapped_column(String(64), index=True)
    publish_status: Mapped[int | None] = mapped_column(Integer)
    publish_msg_data_id: Mapped[str | None] = mapped_column(String(64))
    article_id: Mapped[str | None] = mapped_column(String(128))
    article_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    fail_idx: Mapped[list[int]] = mapped_column(JSON, default=list)
    msg_id: Mapped[str | None] = mapped_column(String(64))
    msg_data_id: Mapped[str | None] = mapped_column(String(64))
    mass_status: Mapped[str | None] = mapped_column(String(32))
    #: Beijing date (YYYY-MM-DD) of the publish / mass send: the statistics window starts there.
    sent_date: Mapped[str | None] = mapped_column(String(10))
    error: Mapped[str | None] = mapped_column(Text)
    errcode: Mapped[int | None] = mapped_column(Integer)
    #: re-submits made after a submit with no answer, when WeChat's state could not
    #: prove the first one unapplied (migration ``0007``); 0 in the normal case.
    at_risk: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WeChatArticleStat(Base):
    __tablename__ = "wechat_article_stat"
    __table_args__ = (
        UniqueConstraint("msg_data_id", "article_index", "ref_date", name="uq_wechat_article_stat"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(
        ForeignKey("wechat_publication.id", ondelete="CASCADE")
    )
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id"))
    msg_data_id: Mapped[str] = mapped_column(String(64))
    article_index: Mapped[int] = mapped_column(Integer)
    ref_date: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(200), default="")
    read_user: Mapped[int] = mapped_column(Integer, default=0)
    read_count: Mapped[int] = mapped_column(Integer, default=0)
    share_user: Mapped[int] = mapped_column(Integer, default=0)
    share_count: Mapped[int] = mapped_column(Integer, default=0)
    fav_user: Mapped[int] = mapped_column(Integer, default=0)
    fav_count: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    synced_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WeChatToken(Base):
    """The shared access token of one account (no Redis): see ``wechat.access_token``."""

    __tablename__ = "wechat_token"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    token: Mapped[str] = mapped_column(Text)
    #: epoch seconds (``core.clock.timestamp``) after which the token is refreshed early
    refresh_at: Mapped[float] = mapped_column(Float)
    #: how many times the token was fetched: one fetch per generation
    generation: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
