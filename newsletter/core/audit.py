"""The audit log: who did what to which thing, and when. Every domain writes it through
:func:`audit`, in the same transaction as the change it records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.core.orm import Base, BigId, utcnow

__all__ = ["AuditLog", "audit"]


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    remote: Mapped[str | None] = mapped_column(String(64))


def audit(
    session: Session,
    actor: str,
    action: str,
    target: str = "",
    *,
    remote: object = None,
    **detail: object,
) -> None:
    """Record ``action`` by ``actor`` on ``target`` (``kind:id``) with ``detail``, and the
    client address when a person did it over the web."""
    session.add(
        AuditLog(
            actor=actor,
            action=action,
            target=target[:200],
            detail=dict(detail),
            remote=str(remote)[:64] if remote is not None else None,
        )
    )
