"""The lease on a WeChat publication: two runs never work on one publication at once.

A run that meets a live lease fails naming the holder and the expiry (:class:`LeaseHeld`);
``take_over`` breaks a lease whose holder is gone.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket

from sqlalchemy import or_, update

from newsletter.core.db import session_scope
from newsletter.core.errors import StateError
from newsletter.models import utcnow
from newsletter.models.wechat import WeChatPublication
from newsletter.wechat.publication import load

__all__ = ["LEASE", "LeaseHeld", "release", "take_lease"]

log = logging.getLogger("newsletter.wechat")
LEASE = dt.timedelta(minutes=20)


class LeaseHeld(StateError):
    """Another run holds the publication's lease."""


def _holder_gone(owner: str) -> bool:
    """True unless ``owner`` (host:pid:nonce) is a live process on this host."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another host: the operator vouches for it with --take-over
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take_lease(pub_id: int, owner: str, take_over: bool) -> None:
    """Take the lease or raise :class:`LeaseHeld` naming its holder and expiry."""
    if _lease(pub_id, owner):
        return
    held = load(pub_id)
    holder, until = held.lease_owner or "?", held.lease_until
    until_text = until.strftime("%Y-%m-%d %H:%M:%S UTC") if until else "?"
    if take_over:
        if not _holder_gone(holder):
            raise LeaseHeld(
                f"lease holder {holder} is still running on this host; not taking over / "
                f"持有者 {holder} 仍在运行，不接管"
            )
        log.warning("wechat: publication %s: taking over the lease of %s", pub_id, holder)
        with session_scope() as s:
            s.execute(
                update(WeChatPublication)
                .where(WeChatPublication.id == pub_id, WeChatPublication.lease_owner == holder)
                .values(lease_owner=None, lease_until=None)
            )
        if _lease(pub_id, owner):
            return
        raise LeaseHeld("another run took the lease at the same moment / 租约刚被另一进程取得")
    raise LeaseHeld(
        f"another run ({holder}) holds this WeChat publication until {until_text}; "
        "wait for it, or run `newsletter wechat publish ISSUE --take-over` if it is gone / "
        f"另一进程（{holder}）正在处理此微信发布，租约至 {until_text}；"
        "如该进程已不在，请加 --take-over 接管"
    )


def release(pub_id: int, owner: str) -> None:
    """Give the lease back, if this run still holds it."""
    with session_scope() as s:
        s.execute(
            update(WeChatPublication)
            .where(WeChatPublication.id == pub_id, WeChatPublication.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


def _lease(pub_id: int, owner: str) -> bool:
    """Take the publication's lease if it is free or expired."""
    now = utcnow()
    with session_scope() as s:
        res = s.execute(
            update(WeChatPublication)
            .where(
                WeChatPublication.id == pub_id,
                or_(WeChatPublication.lease_until.is_(None), WeChatPublication.lease_until < now),
            )
            .values(lease_owner=owner, lease_until=now + LEASE)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]
