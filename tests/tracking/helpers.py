"""Shared helpers for the tracking tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from newsletter.core.db import session_scope
from newsletter.delivery.run import drive_inline
from newsletter.models import Delivery, Link, RollupHourly
from newsletter.models.tracking import RollupLinkCls, RollupSegment
from tests.factories import seed

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko)"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel)"


def sent_send(n: int, *, links: int = 1) -> dict[str, Any]:
    """Seed n subscribers, send (maildir outbox), optionally add links 2..links to the issue."""
    ids = seed(n)
    assert drive_inline(ids["send"]) == "finished"
    with session_scope() as s:
        for p in range(2, links + 1):
            s.add(
                Link(issue_id=ids["issue"], position=p, url=f"https://www.gov.cn/zhengce/{p}.htm")
            )
        ids["deliveries"] = list(s.scalars(select(Delivery.id).order_by(Delivery.id)))
        sent = s.scalar(select(Delivery.sent_at).where(Delivery.id == ids["deliveries"][0]))
    ids["sent_at"] = sent
    return ids


def ev(
    uid: str,
    kind: str,
    did: int,
    at: dt.datetime,
    *,
    ua: str = BROWSER,
    link: int | None = None,
    net: str = "",
) -> dict[str, Any]:
    return {"uid": uid, "kind": kind, "delivery_id": did, "link": link, "at": at.isoformat(),
            "ua": ua, "ip": "", "net": net}  # fmt: skip


def snapshot(send_id: int) -> tuple[dict[tuple[Any, ...], tuple[int, int]], ...]:
    with session_scope() as s:
        e = {
            (r.variant, r.domain_group, r.kind, r.cls): (r.total, r.uniq)
            for r in s.scalars(select(RollupSegment).where(RollupSegment.send_id == send_id))
            if (r.total, r.uniq) != (0, 0)
        }
        e.update(
            {
                (r.hour, r.kind, r.cls): (r.total, r.uniq)
                for r in s.scalars(select(RollupHourly).where(RollupHourly.send_id == send_id))
                if (r.total, r.uniq) != (0, 0)
            }
        )
        lk = {
            (r.link_position, r.cls): (r.total, r.uniq)
            for r in s.scalars(select(RollupLinkCls).where(RollupLinkCls.send_id == send_id))
            if (r.total, r.uniq) != (0, 0)
        }
        firsts = {
            d.id: (d.first_open_at, d.first_click_at)
            for d in s.scalars(select(Delivery).where(Delivery.send_id == send_id))
        }
    return e, lk, firsts
