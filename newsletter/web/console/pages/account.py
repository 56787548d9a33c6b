"""Signing in and out, the language switch, static files, and a person's own account (password, API tokens)."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
)
from sqlalchemy import select

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.ratelimit import login_done, reserve_login
from newsletter.models import utcnow
from newsletter.models.console import User
from newsletter.web.console import services as svc
from newsletter.web.console.auth import (
    authenticate,
    check_password,
    clear_session,
    client_ip,
    csrf_ok,
    issue_session,
    record,
    safe_next,
    secure_cookies,
)
from newsletter.web.console.flash import back
from newsletter.web.console.i18n import (
    LANGS,
)
from newsletter.web.console.pages.common import (
    LANG,
    LOGIN_PER_IP,
    LOGIN_PER_USER,
    LOGIN_WINDOW,
    STATIC,
    Viewer,
    _done,
    page,
)
from newsletter.web.console.switches import local_login_enabled, sso_configured

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "") -> HTMLResponse:
    user = authenticate(request)
    if user is not None and user.via == "session":
        return back(safe_next(next))  # type: ignore[return-value]
    return page(request, "login.html", None, next=safe_next(next), **login_options())


def login_options() -> dict[str, Any]:
    with session_scope() as s:
        local = local_login_enabled(s)
    return {"sso": sso_configured(), "sso_label": get_settings().oidc_label, "local": local}


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    target = safe_next(next)
    opts = login_options()
    if not csrf_ok(request.cookies.get("nl_anon", ""), csrf):
        return page(
            request, "login.html", None, 403, next=target, error="表单已过期，请刷新页面", **opts
        )
    if not opts["local"]:
        return page(
            request,
            "login.html",
            None,
            403,
            next=target,
            error="本地账号登录已关闭，请使用单点登录",
            **opts,
        )
    username = username.strip().lower()[:320]
    ip = client_ip(request)
    # One key per (account, source address) and one per address: a stranger failing
    # for an account from elsewhere slows down only himself, never the account's owner
    # at her own address. Each failure makes the next attempt on its keys wait longer
    # (a growing delay, never a lock). The attempt is reserved first, atomically and
    # committed before the password is looked at: of N parallel tries, at most the
    # free ones reach the password check.
    pair, ikey = f"console-login:{username}|{ip}", f"console-login:ip:{ip}"
    with session_scope() as s:
        wait = reserve_login(s, {pair: LOGIN_PER_USER, ikey: LOGIN_PER_IP}, idle=LOGIN_WINDOW)
        if wait:
            s.rollback()
            record(s, username or "-", "login.throttled", username, request, wait=wait)
    if wait:
        refused = page(
            request,
            "login.html",
            None,
            429,
            next=target,
            error=f"尝试次数过多，请 {wait} 秒后再试 / too many attempts, try again in {wait} s",
            **opts,
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    with session_scope() as s:
        user = s.scalar(select(User).where(User.username == username))
        ok = check_password(user, password) and user is not None and user.active
        if not ok:
            record(s, username or "-", "login.failed", username, request)
            failed = True
        else:
            assert user is not None
            user.last_login_at = utcnow()
            record(s, user.username, "login", user.username, request)
            login_done(s, clear=[pair], refund=[ikey])  # a success clears its own delay
            failed = False
    if failed:
        return page(
            request,
            "login.html",
            None,
            401,
            next=target,
            error="登录失败：用户名或密码错误",
            **opts,
        )
    assert user is not None
    resp = RedirectResponse(target, status_code=303)
    issue_session(resp, user)
    return resp


@router.post("/logout")
def logout(request: Request, user: Viewer) -> Response:
    # Revoke on the server: the session version moves on, so this cookie (and any copy
    # of it) stops working, not just the browser's copy.
    with session_scope() as s:
        row = s.get(User, user.user_id)
        sso = row is not None and row.auth_source == "oidc"
        if row is not None:
            row.session_version += 1
        record(s, user, "logout", user.username, request)
    # A single sign-on account goes on to the provider's logout (RP-initiated).
    resp = back("/console/sso/logout" if sso else "/console/login")
    clear_session(resp)
    return resp


@router.get("/lang")
def switch_lang(to: str = "zh", next: str = "/console/") -> Response:
    resp = RedirectResponse(safe_next(next), status_code=303)
    resp.set_cookie(
        LANG,
        to if to in LANGS else "zh",
        max_age=365 * 86400,
        samesite="lax",
        secure=secure_cookies(),
        path="/console",
        httponly=True,
    )
    return resp


@router.get("/static/{path:path}")
def static(path: str) -> Response:
    from newsletter.core.safety.safepath import reference_problem

    # Same rule as every other file reference: no control character, resolve, stay inside.
    if "\x00" in path or reference_problem(STATIC, path) is not None:
        raise HTTPException(404)
    target = (STATIC / path).resolve()
    if STATIC.resolve() not in target.parents or not target.is_file():
        raise HTTPException(404)
    ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(
        target,
        media_type=ctype,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, user: Viewer) -> HTMLResponse:
    return page(request, "account.html", user, tokens=svc.tokens(user.user_id), new_token=None)


@router.post("/account/tokens", response_class=HTMLResponse)
def account_token_create(
    request: Request,
    user: Viewer,
    name: Annotated[str, Form()] = "",
    days: Annotated[int, Form()] = 90,
) -> HTMLResponse:
    out = svc.create_token(user, user.user_id, name or "api", max(1, min(days, 365)), request)
    # Shown once, in this response only (not through a redirect or a cookie).
    return page(request, "account.html", user, tokens=svc.tokens(user.user_id), new_token=out)


@router.post("/account/tokens/{token_id}/revoke")
def account_token_revoke(request: Request, user: Viewer, token_id: int) -> Response:
    return _done(
        lambda: svc.revoke_token(user, token_id, request), "/console/account", "已吊销 / revoked"
    )


@router.post("/account/password")
def account_password(
    request: Request,
    user: Viewer,
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
) -> Response:
    with session_scope() as s:
        me = s.get(User, user.user_id)
        ok = check_password(me, current)
    if not ok:
        return back("/console/account", "当前密码错误 / wrong current password", "error")
    return _done(
        lambda: svc.update_user(user, user.user_id, password=new, request=request),
        "/console/login",
        "密码已修改，请重新登录 / password changed; log in again",
        back_to="/console/account",
    )
