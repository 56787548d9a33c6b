"""Console services for users, personal API tokens and the audit log."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import Request
from sqlalchemy import select

from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound
from newsletter.core.ratelimit import login_done, reserve_login
from newsletter.models import AuditLog, utcnow
from newsletter.models.console import ROLES, ApiToken, User
from newsletter.web.console import twofactor
from newsletter.web.console.auth import (
    LOGIN_PER_IP,
    LOGIN_PER_USER,
    LOGIN_WINDOW,
    Principal,
    client_ip,
    hash_password,
    new_api_token,
    record,
)
from newsletter.web.console.services.common import ConsoleError

__all__ = [
    "FreshCodeNeeded",
    "audit_entries",
    "fresh_check",
    "create_token",
    "create_user",
    "list_users",
    "revoke_token",
    "tokens",
    "update_user",
    "user_row",
]


def user_row(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "role": u.role,
        "active": u.active,
        "source": u.auth_source,
        "created_at": u.created_at.isoformat(),
        "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
        "two_factor": u.totp_secret is not None,
    }


def list_users() -> list[dict[str, Any]]:
    with session_scope() as s:
        return [user_row(u) for u in s.scalars(select(User).order_by(User.username))]


def create_user(
    actor: Principal | str,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    request: Request | None = None,
) -> dict[str, Any]:
    username = username.strip().lower()
    if not re.fullmatch(r"[\w.@+-]{2,320}", username):
        raise ConsoleError("user names use letters, digits and . @ + - _ / 用户名格式不正确")
    if role not in ROLES:
        raise ConsoleError(f"role must be one of {', '.join(ROLES)} / 角色无效")
    try:
        hashed = hash_password(password, (username, display_name))
    except ValueError as exc:
        raise ConsoleError(str(exc)) from exc
    with session_scope() as s:
        if s.scalar(select(User.id).where(User.username == username)) is not None:
            raise ConsoleError(f"user {username} exists / 用户已存在")
        u = User(
            username=username, display_name=display_name.strip(), password_hash=hashed, role=role
        )
        s.add(u)
        s.flush()
        record(s, actor, "user.create", username, request, role=role)
        return user_row(u)


def update_user(
    actor: Principal,
    user_id: int,
    *,
    role: str | None = None,
    active: bool | None = None,
    password: str | None = None,
    request: Request | None = None,
) -> dict[str, Any]:
    with session_scope() as s:
        u = s.get(User, user_id)
        if u is None:
            raise NotFound("user not found / 用户不存在")
        if u.id == actor.user_id and (active is False or (role and role != "admin")):
            raise ConsoleError("you cannot demote or deactivate yourself / 不能降级或停用自己")
        detail: dict[str, object] = {}
        if role is not None:
            if role not in ROLES:
                raise ConsoleError("role is invalid / 角色无效")
            u.role, detail["role"] = role, role
        if active is not None:
            u.active, detail["active"] = active, active
        if password:
            try:
                u.password_hash = hash_password(password, (u.username, u.display_name))
            except ValueError as exc:
                raise ConsoleError(str(exc)) from exc
            detail["password"] = "changed"
        u.session_version += 1  # any change logs the user out everywhere
        record(s, actor, "user.update", u.username, request, **detail)
        return user_row(u)


def tokens(user_id: int) -> list[dict[str, Any]]:
    with session_scope() as s:
        return [
            {
                "id": t.id,
                "name": t.name,
                "prefix": t.prefix,
                "created_at": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                "revoked": t.revoked_at is not None,
            }
            for t in s.scalars(
                select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
            )
        ]


class FreshCodeNeeded(ConsoleError):
    """A person with a second factor creates an API token only with a fresh code."""


def fresh_check(user_id: int, code: str, request: Request | None) -> None:
    """Raise unless ``code`` is a current TOTP (or an unused recovery) code of the user,
    checked under the login delays of (account, address); a user without a second
    factor passes."""
    ip = client_ip(request) if request is not None else ""
    with session_scope() as s:
        u = s.get(User, user_id)
        if u is None or not twofactor.has_two_factor(u):
            return
        username = u.username
    pair, ikey = f"console-login:{username}|{ip}", f"console-login:ip:{ip}"
    with session_scope() as s:
        wait = reserve_login(s, {pair: LOGIN_PER_USER, ikey: LOGIN_PER_IP}, idle=LOGIN_WINDOW)
        if wait:
            s.rollback()
            raise FreshCodeNeeded(
                f"尝试次数过多，请 {wait} 秒后再试 / too many attempts, try again in {wait} s"
            )
    with session_scope() as s:
        u = s.get(User, user_id)
        assert u is not None
        how = twofactor.check_code(s, u, code or "")
        if how is None:
            record(s, username, "token.2fa_failed", username, request)
        else:
            login_done(s, clear=[pair], refund=[ikey])
    if how is None:
        raise FreshCodeNeeded(
            "创建令牌需要当前的两步验证码 / creating a token needs a current two-factor code"
        )


def create_token(
    actor: Principal | str,
    user_id: int,
    name: str,
    days: int | None = 90,
    request: Request | None = None,
    otp: str = "",
) -> dict[str, Any]:
    if isinstance(actor, Principal):  # the CLI (an admin on the server) needs no code
        fresh_check(user_id, otp, request)
    token, prefix, digest = new_api_token()
    with session_scope() as s:
        u = s.get(User, user_id)
        if u is None:
            raise NotFound("user not found / 用户不存在")
        t = ApiToken(
            user_id=user_id,
            name=name.strip()[:200],
            prefix=prefix,
            token_hash=digest,
            expires_at=utcnow() + dt.timedelta(days=days) if days else None,
        )
        s.add(t)
        s.flush()
        record(s, actor, "token.create", u.username, request, token_id=t.id, name=t.name)
        return {
            "id": t.id,
            "name": t.name,
            "prefix": prefix,
            "token": token,
            "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        }


def revoke_token(actor: Principal, token_id: int, request: Request | None = None) -> None:
    with session_scope() as s:
        t = s.get(ApiToken, token_id)
        if t is None or (t.user_id != actor.user_id and actor.role != "admin"):
            raise NotFound("token not found / 令牌不存在")
        if t.revoked_at is None:
            t.revoked_at = utcnow()
        record(s, actor, "token.revoke", f"token:{token_id}", request)


def audit_entries(limit: int = 100) -> list[dict[str, Any]]:
    with session_scope() as s:
        return [
            {
                "at": a.at.isoformat(),
                "actor": a.actor,
                "action": a.action,
                "target": a.target,
                "detail": a.detail,
                "remote": a.remote,
            }
            for a in s.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit))
        ]
