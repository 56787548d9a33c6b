"""Fixed-window rate limits stored in the database (work in every mode, shared by all processes).

``hit`` increments the counter of (key, window) in one upsert and says whether
the caller is still within ``limit``.  Used for console logins and the public
subscribe form, where a bot must not make us mail thousands of strangers.

The check is a sliding window: the current window's count plus the previous
window's, weighted by how much of it still overlaps the last ``window_seconds``.
A plain fixed window would let a burst straddling the boundary make twice the
limit of attempts.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.core.orm import Base, utcnow

__all__ = ["LoginThrottle", "RateCounter", "hit"]


class RateCounter(Base):
    """Fixed-window counters for rate limits that must work without Redis (subscribe forms)."""

    __tablename__ = "rate_counter"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class LoginThrottle(Base):
    """Failures in a row and the next allowed instant of one login key (migration ``0018``).

    Keys are per (account, source address) and per source address; see
    ``web.console.throttle``.
    """

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[dt.datetime] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def hit(
    session: Session, key: str, *, window_seconds: int, limit: int, now: dt.datetime | None = None
) -> bool:
    now = now or utcnow()
    epoch = int(now.timestamp()) // window_seconds * window_seconds
    start = dt.datetime.fromtimestamp(epoch, dt.UTC)
    ins = (
        postgresql.insert(RateCounter)
        if session.get_bind().dialect.name == "postgresql"
        else sqlite.insert(RateCounter)
    )
    stmt = (
        ins.values(key=key[:200], window_start=start, count=1)
        .on_conflict_do_update(
            index_elements=["key", "window_start"], set_={"count": RateCounter.count + 1}
        )
        .returning(RateCounter.count)
    )
    count = session.scalar(stmt) or 0
    if count > limit:
        return False
    previous = session.scalar(
        select(RateCounter.count).where(
            RateCounter.key == key[:200],
            RateCounter.window_start == start - dt.timedelta(seconds=window_seconds),
        )
    )
    if not previous:
        return True
    overlap = 1.0 - (now.timestamp() - epoch) / window_seconds
    return count + previous * overlap <= limit
