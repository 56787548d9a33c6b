"""Streaming export of a list or segment to CSV (UTF-8 with BOM, so Excel opens it)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select, true

from newsletter.audience.segments import compile_segment
from newsletter.core.db import session_scope
from newsletter.core.safety.csvsafe import writer as csv_writer
from newsletter.models import Subscriber, Subscription

__all__ = ["export_rows", "iter_csv"]

HEADER = [
    "email",
    "name",
    "variant",
    "status",
    "list_status",
    "created_at",
    "confirmed_at",
    "source",
    "attributes",
]


def export_rows(
    list_id: int | None, segment: Any | None = None, *, chunk: int = 5000
) -> Iterator[list[str]]:
    """Rows in id order, fetched in keyset-paginated chunks (memory stays flat)."""
    last = 0
    while True:
        with session_scope() as s:
            q = select(Subscriber, Subscription.status).where(Subscriber.id > last)
            if list_id is not None:
                q = q.join(
                    Subscription,
                    (Subscription.subscriber_id == Subscriber.id)
                    & (Subscription.list_id == list_id),
                )
            else:
                q = select(Subscriber, Subscriber.status).where(Subscriber.id > last)
            q = q.where(Subscriber.status != "erased")
            q = q.where(compile_segment(segment) if segment else true())
            rows = s.execute(q.order_by(Subscriber.id).limit(chunk)).all()
        if not rows:
            return
        for sub, list_status in rows:
            attrs = ";".join(f"{k}={v}" for k, v in (sub.attributes or {}).items())
            yield [
                sub.email,
                sub.name,
                sub.variant,
                sub.status,
                str(list_status),
                sub.created_at.isoformat(),
                sub.confirmed_at.isoformat() if sub.confirmed_at else "",
                sub.source,
                attrs,
            ]
        last = rows[-1][0].id


def iter_csv(list_id: int | None, segment: Any | None = None) -> Iterator[bytes]:
    """The CSV as byte chunks (BOM first), for files and HTTP streaming."""
    buf = io.StringIO()
    w = csv_writer(buf)  # formula cells neutralised (OWASP)
    w.writerow(HEADER)
    yield "\ufeff".encode() + buf.getvalue().encode()
    for row in export_rows(list_id, segment):
        buf.seek(0)
        buf.truncate()
        w.writerow(row)
        yield buf.getvalue().encode()
