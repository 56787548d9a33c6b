"""Console services for suppressions (addresses never mailed) and the bounces and
complaints that put them there."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import func, select

from newsletter.audience.service import suppress, unsuppress
from newsletter.core.db import session_scope
from newsletter.models import (
    Delivery,
    Suppression,
)
from newsletter.web.console.auth import Principal, record

__all__ = [
    "BOUNCE_REASONS",
    "add_suppression",
    "bounces",
    "remove_suppression",
    "suppressions",
]


def suppressions(q: str = "", limit: int = 100) -> list[dict[str, Any]]:
    with session_scope() as s:
        stmt = select(Suppression)
        if q:
            stmt = stmt.where(Suppression.email.like(q.strip().lower().replace("%", "") + "%"))
        return [
            {
                "email": r.email,
                "reason": r.reason,
                "note": r.note,
                "created_at": r.created_at.isoformat(),
            }
            for r in s.scalars(stmt.order_by(Suppression.id.desc()).limit(max(1, min(limit, 500))))
        ]


def add_suppression(
    actor: Principal, email: str, note: str, request: Request | None = None
) -> bool:
    with session_scope() as s:
        added = suppress(s, email, "manual", note=note[:1000])
        record(s, actor, "suppression.add", email, request, note=note)
        return added


def remove_suppression(actor: Principal, email: str, request: Request | None = None) -> bool:
    with session_scope() as s:
        removed = unsuppress(s, email)
        record(s, actor, "suppression.remove", email, request)
        return removed


BOUNCE_REASONS = ("hard_bounce", "complaint")


def bounces(kind: str = "", page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """Recent hard bounces and complaints (newest first) with the receiver's reason and the
    send they came from, and the total."""

    reasons = (kind,) if kind in BOUNCE_REASONS else BOUNCE_REASONS
    page = max(1, min(page, 10_000))
    with session_scope() as s:
        total = (
            s.scalar(
                select(func.count()).select_from(Suppression).where(Suppression.reason.in_(reasons))
            )
            or 0
        )
        rows = s.execute(
            select(Suppression, Delivery.send_id)
            .outerjoin(Delivery, Delivery.id == Suppression.delivery_id)
            .where(Suppression.reason.in_(reasons))
            .order_by(Suppression.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        return {
            "total": int(total),
            "page": page,
            "per_page": per_page,
            "rows": [
                {
                    "email": r.email,
                    "reason": r.reason,
                    "note": r.note,
                    "send_id": send_id,
                    "created_at": r.created_at.isoformat(),
                }
                for r, send_id in rows
            ],
        }
