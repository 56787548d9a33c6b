"""Events and their rollups.

* ``rollup_segment``: send × variant × domain group × kind × class → total, uniq
  (at most a few hundred rows per send).  The hourly series is the existing
  ``rollup_hourly`` (send × hour × kind × class), kept in the same transaction.
* ``rollup_link_cls``: send × link × class → total, uniq (distinct deliveries).
* ``tracking_first``: (delivery, key) stored at most once; an insert that
  touches a row is what moves a unique counter that has no column on
  ``delivery`` (machine opens, per-link uniques, unsubscribes …).  Human
  opens and clicks keep using ``delivery.first_open_at`` / ``first_click_at``.
* ``send_audience``: send × variant × domain group × delivery state → count,
  cached once a send is finished (the denominators of per-segment rates).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.core.orm import Base, BigId, utcnow


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


class RollupSegment(Base):
    __tablename__ = "rollup_segment"

    send_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    variant: Mapped[str] = mapped_column(String(8), primary_key=True)
    domain_group: Mapped[str] = mapped_column(String(16), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    cls: Mapped[str] = mapped_column(String(8), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    uniq: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupLinkCls(Base):
    __tablename__ = "rollup_link_cls"

    send_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_position: Mapped[int] = mapped_column(Integer, primary_key=True)
    cls: Mapped[str] = mapped_column(String(8), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    uniq: Mapped[int] = mapped_column(BigInteger, default=0)


class TrackingFirst(Base):
    __tablename__ = "tracking_first"

    delivery_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(16), primary_key=True)


class SendAudience(Base):
    __tablename__ = "send_audience"

    send_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    variant: Mapped[str] = mapped_column(String(8), primary_key=True)
    domain_group: Mapped[str] = mapped_column(String(16), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: the relay that carried the deliveries ("" when none did), and whether they are
    #: counted at risk of a duplicate (migration 0026)
    relay: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    at_risk: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=False)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


# Indexes on the event table that tracking needs (created by migration 0004):
# per-delivery lookups (click bursts, erasure, per-recipient export) and retention purges.
Index("ix_event_delivery_kind", Event.delivery_id, Event.kind)
Index("ix_event_occurred_at", Event.occurred_at)
