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

from sqlalchemy import Integer, String, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from newsletter.core.orm import Base, utcnow

__all__ = ["LoginThrottle", "RateCounter", "hit", "login_delay", "login_done", "reserve_login"]


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


# -- login: a growing delay per key, never a lock others can set ---------------------


def login_delay(failures: int, free: int, base: int = 30, cap: int = 900) -> int:
    """Seconds the next attempt waits after ``failures`` attempts: none within the first
    ``free``, then ``base``, twice that, four times … at most ``cap``."""
    if failures < free:
        return 0
    return min(cap, base * 2 ** min(failures - free, 20))


def reserve_login(
    session: Session, keys: dict[str, int], *, idle: int = 900, now: dt.datetime | None = None
) -> int:
    """Reserve one attempt on every key (key → free attempts); 0 when it may go ahead,
    else the seconds to wait (nothing is counted then).

    Atomic: each key is an upsert that counts the attempt only while the key's delay
    has passed (``INSERT … ON CONFLICT DO UPDATE … WHERE not_before <= now … RETURNING``),
    and the next delay is set in the same transaction, so of N parallel attempts at most
    the free ones go ahead. A key idle for ``idle`` seconds starts again from zero. The
    caller commits; on a wait it must roll back (the other keys' counts are undone)."""
    now = now or utcnow()
    ins = (
        postgresql.insert(LoginThrottle)
        if session.get_bind().dialect.name == "postgresql"
        else sqlite.insert(LoginThrottle)
    )
    stale = now - dt.timedelta(seconds=idle)
    wait = 0
    for key, free in keys.items():
        k = key[:400]
        stmt = (
            ins.values(key=k, failures=1, not_before=now, updated_at=now)
            .on_conflict_do_update(
                index_elements=["key"],
                set_={
                    "failures": case(
                        (LoginThrottle.updated_at < stale, 1), else_=LoginThrottle.failures + 1
                    ),
                    "updated_at": now,
                },
                where=LoginThrottle.not_before <= now,
            )
            .returning(LoginThrottle.failures)
        )
        failures = session.scalar(stmt)
        if failures is None:  # still waiting: the delay of an earlier failure
            until = session.scalar(select(LoginThrottle.not_before).where(LoginThrottle.key == k))
            wait = max(wait, int((until - now).total_seconds()) + 1 if until else 1)
            continue
        delay = login_delay(failures, free)
        if delay:
            session.execute(
                update(LoginThrottle)
                .where(LoginThrottle.key == k)
                .values(not_before=now + dt.timedelta(seconds=delay))
            )
    return wait


def login_done(session: Session, clear: list[str], refund: list[str]) -> None:
    """A successful login: ``clear`` keys start again from zero, ``refund`` keys get the
    attempt back (and lose any delay it set)."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_([k[:400] for k in clear])))
    for key in refund:
        session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == key[:400], LoginThrottle.failures > 0)
            .values(failures=LoginThrottle.failures - 1, not_before=utcnow())
        )
