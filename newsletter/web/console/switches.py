"""Console-wide switches kept in the database (``console_setting``).

``local_login``: whether password accounts may log in. The setting
``NEWSLETTER_LOCAL_LOGIN=false`` is a floor that the console cannot lift; the console
can only turn local logins off, and only while single sign-on is configured and has
an active admin, so that nobody locks the door with every key inside. The CLI
(``newsletter users local-login on``) is the break-glass way back in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from newsletter.core.config import get_settings
from newsletter.core.errors import NewsletterError
from newsletter.models import utcnow
from newsletter.models.console import ConsoleSetting, User

__all__ = ["local_login_enabled", "set_local_login", "sso_configured"]

LOCAL_LOGIN = "local_login"


def sso_configured() -> bool:
    cfg = get_settings()
    return bool(cfg.oidc_issuer and cfg.oidc_client_id)


def _get(s: Any, key: str) -> str | None:
    row = s.get(ConsoleSetting, key)
    return row.value if row is not None else None


def local_login_enabled(s: Any) -> bool:
    """May a password account log in (and keep its sessions and tokens) right now?"""
    if not get_settings().local_login:
        return False
    return _get(s, LOCAL_LOGIN) != "off"


def set_local_login(s: Any, on: bool, actor: str, *, force: bool = False) -> None:
    """Turn password logins on or off. Off needs single sign-on with an active admin
    (``force`` skips that check: the CLI's break-glass path only ever turns them on)."""
    if not on and not force:
        if not sso_configured():
            raise NewsletterError(
                "单点登录未配置，不能关闭本地账号登录 / single sign-on is not configured: "
                "local logins cannot be turned off"
            )
        admins = s.scalar(
            select(func.count())
            .select_from(User)
            .where(User.auth_source == "oidc", User.role == "admin", User.active.is_(True))
        )
        if not admins:
            raise NewsletterError(
                "还没有通过单点登录的管理员，不能关闭本地账号登录 / no admin has logged in "
                "by single sign-on yet: local logins cannot be turned off"
            )
    row = s.get(ConsoleSetting, LOCAL_LOGIN)
    if row is None:
        row = ConsoleSetting(key=LOCAL_LOGIN, value="on")
        s.add(row)
    row.value = "on" if on else "off"
    row.updated_at = utcnow()
    row.updated_by = actor[:320]
