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
from itsdangerous import BadSignature
from sqlalchemy import select

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.ratelimit import login_done, reserve_login
from newsletter.models import utcnow
from newsletter.models.console import User
from newsletter.web.console import services as svc
from newsletter.web.console import twofactor
from newsletter.web.console.auth import (
    Principal,
    _serializer,
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
    Enrolling,
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
    second = False
    with session_scope() as s:
        user = s.scalar(select(User).where(User.username == username))
        ok = check_password(user, password) and user is not None and user.active
        if not ok:
            record(s, username or "-", "login.failed", username, request)
            failed = True
        elif user is not None and twofactor.has_two_factor(user):
            # The password was right; the code comes next, under the same delays (the
            # pair is cleared only when the code is right too).
            record(s, user.username, "login.password", user.username, request)
            failed, second = False, True
        else:
            assert user is not None
            user.last_login_at = utcnow()
            record(s, user.username, "login", user.username, request)
            login_done(s, clear=[pair], refund=[ikey])  # a success clears its own delay
            failed = False
    if second:
        assert user is not None
        code_page = page(request, "login_code.html", None, next=target)
        code_page.set_cookie(
            PENDING_COOKIE,
            _serializer(PENDING_SALT).dumps({"u": user.id, "v": user.session_version}),
            max_age=PENDING_SECONDS,
            httponly=True,
            samesite="strict",
            secure=secure_cookies(),
            path="/console/login",
        )
        return code_page
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


PENDING_COOKIE = "nl_2fa"
PENDING_SALT = "console-2fa-pending"
PENDING_SECONDS = 300


@router.post("/login/code", response_class=HTMLResponse)
def login_code(
    request: Request,
    code: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """The second step: a TOTP code or a recovery code, after the right password."""
    target = safe_next(next)
    opts = login_options()

    def again(status: int, error: str) -> HTMLResponse:
        return page(request, "login.html", None, status, next=target, error=error, **opts)

    if not csrf_ok(request.cookies.get("nl_anon", ""), csrf):
        return again(403, "表单已过期，请刷新页面")
    try:
        data = _serializer(PENDING_SALT).loads(
            request.cookies.get(PENDING_COOKIE, ""), max_age=PENDING_SECONDS
        )
        uid, version = int(data["u"]), int(data["v"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return again(401, "验证已过期，请重新登录")
    ip = client_ip(request)
    with session_scope() as s:
        user = s.get(User, uid)
        if user is None or not user.active or user.session_version != version:
            return again(401, "验证已过期，请重新登录")
        username = user.username
    pair, ikey = f"console-login:{username}|{ip}", f"console-login:ip:{ip}"
    with session_scope() as s:
        wait = reserve_login(s, {pair: LOGIN_PER_USER, ikey: LOGIN_PER_IP}, idle=LOGIN_WINDOW)
        if wait:
            s.rollback()
            record(s, username, "login.throttled", username, request, wait=wait)
    if wait:
        refused = page(
            request,
            "login_code.html",
            None,
            429,
            next=target,
            error=f"尝试次数过多，请 {wait} 秒后再试 / too many attempts, try again in {wait} s",
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    with session_scope() as s:
        user = s.get(User, uid)
        assert user is not None
        how = twofactor.check_code(s, user, code)
        if how is None:
            record(s, username, "login.2fa_failed", username, request)
        else:
            user.last_login_at = utcnow()
            left = twofactor.recovery_left(s, user.id)  # the used one already counts
            record(s, username, "login", username, request, second_factor=how)
            # The password step and this one each reserved an attempt on the address.
            login_done(s, clear=[pair], refund=[ikey, ikey])
    if how is None:
        return page(
            request,
            "login_code.html",
            None,
            401,
            next=target,
            error="验证码不正确 / the code is not right",
        )
    resp: Response = RedirectResponse(target, status_code=303)
    if how == "recovery":
        resp = back(
            "/console/account/2fa",
            f"已使用一个恢复码，还剩 {left} 个 / a recovery code was used; {left} left",
        )
    issue_session(resp, user)
    resp.delete_cookie(PENDING_COOKIE, path="/console/login")
    return resp


@router.post("/logout")
def logout(request: Request, user: Enrolling) -> Response:
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


def _account(request: Request, user: Viewer, new_token: Any = None) -> HTMLResponse:
    with session_scope() as s:
        me = s.get(User, user.user_id)
        second = me is not None and twofactor.has_two_factor(me)
        profile = {
            "display_name": me.display_name if me else "",
            "email": (me.email or "") if me else "",
        }
    return page(
        request,
        "account.html",
        user,
        tokens=svc.tokens(user.user_id),
        new_token=new_token,
        two_factor=second,
        me=profile,
    )


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, user: Viewer) -> HTMLResponse:
    return _account(request, user)


@router.post("/account/tokens", response_class=HTMLResponse)
def account_token_create(
    request: Request,
    user: Viewer,
    name: Annotated[str, Form()] = "",
    days: Annotated[int, Form()] = 90,
    code: Annotated[str, Form()] = "",
) -> Response:
    try:
        out = svc.create_token(
            user, user.user_id, name or "api", max(1, min(days, 365)), request, otp=code
        )
    except svc.FreshCodeNeeded as exc:
        return back("/console/account", str(exc), "error")
    # Shown once, in this response only (not through a redirect or a cookie).
    return _account(request, user, new_token=out)


@router.get("/account/2fa", response_class=HTMLResponse)
def two_factor_page(request: Request, user: Enrolling) -> HTMLResponse:
    """Enrol a second factor (a QR code to scan, then a code), or see its state."""
    import base64

    from newsletter.render.qr import qr_png

    qr = secret = None
    with session_scope() as s:
        me = s.get(User, user.user_id)
        assert me is not None
        local, enrolled = me.auth_source == "local", twofactor.has_two_factor(me)
        left = twofactor.recovery_left(s, me.id)
        required = me.role in twofactor.required_roles(s)
        if local and not enrolled:
            secret, uri = twofactor.enrolment(s, me)
            png = qr_png(uri, scale=5)
            qr = "data:image/png;base64," + base64.b64encode(png).decode()
    return page(
        request,
        "two_factor.html",
        user,
        local=local,
        enrolled=enrolled,
        left=left,
        required=required,
        qr=qr,
        secret=secret,
        codes=None,
    )


@router.post("/account/2fa", response_class=HTMLResponse)
def two_factor_enrol(
    request: Request, user: Enrolling, code: Annotated[str, Form()] = ""
) -> Response:
    from newsletter.core.errors import NewsletterError

    try:
        with session_scope() as s:
            me = s.get(User, user.user_id)
            assert me is not None
            codes = twofactor.confirm_enrolment(s, me, code)
            record(s, user, "user.2fa_enable", user.username, request)
    except NewsletterError as exc:
        return back("/console/account/2fa", str(exc), "error")
    user.must_enrol = False
    return _codes_once(request, user, codes)


@router.post("/account/2fa/recovery", response_class=HTMLResponse)
def two_factor_recovery(
    request: Request, user: Viewer, code: Annotated[str, Form()] = ""
) -> Response:
    """New recovery codes (the old ones stop working), with a current authenticator code;
    shown once, in this response only. Under the login throttle, like any code."""
    from newsletter.core.errors import NewsletterError

    ip = client_ip(request)
    pair, ikey = f"console-login:{user.username}|{ip}", f"console-login:ip:{ip}"
    with session_scope() as s:
        wait = reserve_login(s, {pair: LOGIN_PER_USER, ikey: LOGIN_PER_IP}, idle=LOGIN_WINDOW)
    if wait:
        return back(
            "/console/account/2fa",
            f"尝试次数过多，请 {wait} 秒后再试 / too many attempts, try again in {wait} s",
            "error",
        )
    try:
        with session_scope() as s:
            me = s.get(User, user.user_id)
            assert me is not None
            codes = twofactor.regenerate_recovery_codes(s, me, code)
            record(s, user, "user.2fa_recovery", user.username, request)
            login_done(s, clear=[pair], refund=[ikey])
    except NewsletterError as exc:
        with session_scope() as s:
            record(s, user, "login.2fa_failed", user.username, request)
        return back("/console/account/2fa", str(exc), "error")
    return _codes_once(request, user, codes, renewed=True)


def _codes_once(
    request: Request, user: Principal, codes: list[str], *, renewed: bool = False
) -> Response:
    """The two-factor page with fresh recovery codes: shown once, in this response only."""
    return page(
        request,
        "two_factor.html",
        user,
        local=True,
        enrolled=True,
        left=len(codes),
        required=False,
        qr=None,
        secret=None,
        codes=codes,
        renewed=renewed,
    )


@router.post("/account/tokens/{token_id}/revoke")
def account_token_revoke(request: Request, user: Viewer, token_id: int) -> Response:
    return _done(
        lambda: svc.revoke_token(user, token_id, request), "/console/account", "已吊销 / revoked"
    )


@router.post("/account/profile")
def account_profile(
    request: Request,
    user: Viewer,
    display_name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
) -> Response:
    return _done(
        lambda: svc.update_profile(user, display_name, email, request),
        "/console/account",
        "已保存 / saved",
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
