"""The declarative base every table derives from, and the column types they share.

Timestamps are timezone-aware UTC on every backend and default to the product's one
clock; JSON is JSONB on PostgreSQL; big ids fall back to INTEGER on SQLite (which only
auto-increments an INTEGER PRIMARY KEY).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

from newsletter.core import clock

__all__ = ["Base", "BigId", "JSONType", "UTCDateTime", "utcnow"]


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
