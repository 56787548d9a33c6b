"""Background jobs: imports and bulk actions, with their progress."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.core.orm import Base, JSONType, utcnow

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
