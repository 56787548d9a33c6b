"""Console accounts from single sign-on: the role an ID token's claims map to, and the
account found again by (issuer, subject), never by name or address, whose role follows the
provider at every login. A local account with the same name is never taken over."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request
from sqlalchemy import select

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.safety.headers import clean_text
from newsletter.models import utcnow
from newsletter.models.console import ROLES, ApiToken, User
from newsletter.web.console.auth import ROLE_RANK, record

__all__ = ["account_for", "claim_value", "map_role"]


def claim_value(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def map_role(claims: dict[str, Any], claim: str, role_map: dict[str, str]) -> str | None:
    """The console role for an ID token's claims: the highest role any value of
    ``claim`` maps to (through ``role_map``; or, when it is empty, values that name a
    console role themselves, except ``admin``, which only an explicit map grants), or
    None when nothing maps."""
    raw = claim_value(claims, claim)
    values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    roles: set[str] = set()
    for value in values:
        if not isinstance(value, str):
            continue
        role = role_map.get(value) if role_map else (value if value != "admin" else None)
        if role in ROLES:
            roles.add(role)
    return max(roles, key=ROLE_RANK.__getitem__) if roles else None


def _username(claims: dict[str, Any]) -> str:
    email = claims.get("email")
    for value in (
        email if isinstance(email, str) and claims.get("email_verified") is True else None,
        claims.get("preferred_username"),
        claims.get("sub"),
    ):
        if isinstance(value, str) and clean_text(value).strip():
            return clean_text(value).strip().lower()[:300]
    return "sso-user"


def account_for(request: Request, claims: dict[str, Any], issuer: str) -> User | tuple[str, int]:
    """The console account of these verified claims, created or updated and audited; or
    why not, as (message, HTTP status)."""
    cfg = get_settings()
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        return "身份提供方的答复缺少用户标识 / the provider's answer has no subject", 400
    role = map_role(claims, cfg.oidc_role_claim, cfg.oidc_role_map)
    name = _username(claims)
    with session_scope() as s:
        user = s.scalar(
            select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject)
        )
        if role is None:
            record(s, name, "login.sso_refused", name, request, reason="no role")
            if user is not None and user.active:
                # No role any more: its sessions end, and so do the API tokens it made
                # (a token must not outlive the provider's say-so).
                user.session_version += 1
                now = utcnow()
                for tok in s.scalars(
                    select(ApiToken).where(
                        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
                    )
                ):
                    tok.revoked_at = now
            refused = True
        elif user is not None and not user.active:
            record(
                s, user.username, "login.sso_refused", user.username, request, reason="deactivated"
            )
            refused = True
        else:
            refused = False
            if user is None:
                taken = s.scalar(select(User.id).where(User.username == name))
                if taken is not None:
                    name = f"{name[:290]}#{hashlib.sha256(subject.encode()).hexdigest()[:8]}"
                display = claims.get("name")
                user = User(
                    username=name,
                    display_name=clean_text(display)[:200] if isinstance(display, str) else "",
                    password_hash="!sso",  # no password can ever match
                    role=role,
                    auth_source="oidc",
                    oidc_issuer=issuer,
                    oidc_subject=subject,
                )
                s.add(user)
                s.flush()
                record(s, user.username, "user.created_sso", user.username, request, role=role)
            elif user.role != role:
                record(
                    s,
                    user.username,
                    "user.role_from_sso",
                    user.username,
                    request,
                    old=user.role,
                    new=role,
                )
                user.role = role
            user.last_login_at = utcnow()
            record(s, user.username, "login.sso", user.username, request)
    if refused:
        return (
            "你的账号没有控制台角色或已停用，请联系管理员 / your account has no console role "
            "or is deactivated: ask an admin",
            403,
        )
    assert user is not None
    return user
