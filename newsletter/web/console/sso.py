"""Console single sign-on: OpenID Connect with Authlib.

The flow is the authorisation code flow with PKCE (S256), a nonce and a state:

* ``GET /console/sso/login`` makes the provider's URL and keeps ``state``, ``nonce``,
  the PKCE verifier and the page to return to in a signed, ten-minute, HttpOnly
  cookie scoped to ``/console/sso``. Nothing is kept on the server.
* ``GET /console/sso/callback`` checks the state (and the ``iss`` parameter when the
  provider sends it, against mix-ups), exchanges the code, and has Authlib verify the
  ID token: signature against the provider's published keys, issuer, audience,
  expiry and nonce. The role comes from one claim (``oidc_role_claim``, a dotted
  path for nested claims) through ``oidc_role_map``; no console role, no login.
* An account is found again by (issuer, subject), never by name or address, and its
  role follows the provider at every login. A local account with the same name is
  never taken over.
* ``POST /console/logout`` ends the console session on the server, then
  ``GET /console/sso/logout`` sends the browser to the provider's end-session
  endpoint (RP-initiated logout) when it offers one.
* ``POST /console/sso/backchannel-logout`` takes the provider's signed logout token
  (OpenID Back-Channel Logout) and ends every console session of that user.

The provider client is :mod:`.sso_provider`, the accounts :mod:`.sso_accounts`, the
logout token :mod:`.sso_logout`.
"""

from __future__ import annotations

import hmac
from html import escape
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc.errors import JoseError
from sqlalchemy import select

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError
from newsletter.models.console import User
from newsletter.web.console.auth import (
    SESSION_SECONDS,
    Principal,
    issue_session,
    need,
    record,
    safe_next,
    secure_cookies,
)
from newsletter.web.console.flash import back
from newsletter.web.console.oidc_client import OAuthError
from newsletter.web.console.sso_accounts import account_for, claim_value
from newsletter.web.console.sso_logout import logout_subject
from newsletter.web.console.sso_provider import client as _client
from newsletter.web.console.sso_provider import id_token_claims as _id_token_claims
from newsletter.web.console.sso_provider import metadata as _metadata
from newsletter.web.console.switches import set_local_login, sso_configured

__all__ = ["router"]

router = APIRouter(prefix="/console/sso", include_in_schema=False)

STATE_COOKIE = "nl_sso_state"
ID_TOKEN_COOKIE = "nl_sso_id"
STATE_SECONDS = 600


def _signer() -> URLSafeTimedSerializer:
    keys = [k.decode() for k in get_settings().secrets()]
    return URLSafeTimedSerializer(list(reversed(keys)), salt="console-sso")


def _redirect_uri() -> str:
    return get_settings().base_url.rstrip("/") + "/console/sso/callback"


def _page(request: Request, title: str, message: str, status: int) -> HTMLResponse:
    # Shown before anyone is logged in, so it needs none of the console's context; in the
    # console's language (its cookie), Traditional converted as the console's own is.
    from newsletter.web.console.pages.common import lang_of

    tag = "zh-Hant" if lang_of(request) == "zh-Hant" else "zh-Hans"
    back = "返回登录 / back to login"
    if tag == "zh-Hant":
        from newsletter.web.console.i18n import translator

        hant = translator("zh-Hant")
        title, message, back = hant(title), hant(message), hant(back)
    return HTMLResponse(
        f"""<!doctype html><html lang="{tag}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><link rel="stylesheet" href="/console/static/console.css">
</head><body><main><div class="login card"><h1>{escape(title)}</h1>
<div class="flash error" role="alert">{escape(message)}</div>
<p><a href="/console/login">{escape(back)}</a></p></div></main></body></html>""",
        status_code=status,
        headers={"Cache-Control": "no-store", "Content-Language": tag},
    )


def _refused(request: Request, message: str, status: int = 403) -> HTMLResponse:
    return _page(request, "单点登录失败 / Sign-in failed", message, status)


@router.get("/login")
async def sso_login(request: Request, next: str = "") -> Response:
    if not sso_configured():
        raise HTTPException(404, "single sign-on is not configured / 未配置单点登录")
    try:
        await _metadata()
        rv = await _client().create_authorization_url(_redirect_uri())
    except (OAuthError, OSError, ValueError) as exc:
        del exc
        return _refused(
            request, "无法连接身份提供方 / the identity provider cannot be reached", 502
        )
    state = {
        "s": rv["state"],
        "n": rv["nonce"],
        "v": rv["code_verifier"],
        "t": safe_next(next),
    }
    resp = RedirectResponse(rv["url"], status_code=303)
    resp.set_cookie(
        STATE_COOKIE,
        _signer().dumps(state),
        max_age=STATE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(),
        path="/console/sso",
    )
    return resp


@router.get("/callback")
async def sso_callback(request: Request) -> Response:
    if not sso_configured():
        raise HTTPException(404, "single sign-on is not configured / 未配置单点登录")
    params = request.query_params
    raw = request.cookies.get(STATE_COOKIE, "")
    try:
        saved = _signer().loads(raw, max_age=STATE_SECONDS) if raw else None
    except BadSignature:
        saved = None
    if not isinstance(saved, dict) or not hmac.compare_digest(
        str(saved.get("s", "")), params.get("state", "")
    ):
        return _refused(
            request,
            "登录请求已过期或无效，请重试 / the sign-in request expired or is not valid: try again",
            400,
        )
    if params.get("error"):
        return _refused(request, "身份提供方拒绝了登录 / the identity provider refused the sign-in")
    try:
        meta = await _metadata()
        iss = params.get("iss")
        if iss is not None and iss.rstrip("/") != str(meta.get("issuer", "")).rstrip("/"):
            return _refused(request, "身份提供方不符 / the answer came from another provider", 400)
        client = _client()
        token = await client.fetch_access_token(
            redirect_uri=_redirect_uri(),
            code=params.get("code", ""),
            code_verifier=saved.get("v", ""),
        )
        userinfo = await client.parse_id_token(
            token, nonce=saved.get("n", ""), claims_cls=_id_token_claims(token)
        )
    except (OAuthError, JoseError, OSError, ValueError, KeyError) as exc:
        del exc
        return _refused(
            request, "无法验证身份提供方的答复 / the provider's answer could not be verified", 400
        )
    claims: dict[str, Any] = dict(userinfo or {})
    cfg = get_settings()
    if claim_value(claims, cfg.oidc_role_claim) is None and meta.get("userinfo_endpoint"):
        try:
            extra = await client.userinfo(token=token)
            if str(extra.get("sub")) == str(claims.get("sub")):
                claims = {**dict(extra), **claims}
        except (OAuthError, OSError, ValueError):
            pass
    outcome = account_for(request, claims, str(meta["issuer"]))
    if isinstance(outcome, tuple):
        return _refused(request, *outcome)
    target = safe_next(saved.get("t"))
    resp = RedirectResponse(target, status_code=303)
    issue_session(resp, outcome)
    resp.delete_cookie(STATE_COOKIE, path="/console/sso")
    id_token = token.get("id_token")
    if isinstance(id_token, str) and len(id_token) < 3500:
        resp.set_cookie(
            ID_TOKEN_COOKIE,
            id_token,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="lax",
            secure=secure_cookies(),
            path="/console",
        )
    return resp


@router.get("/logout")
async def sso_logout(request: Request) -> Response:
    """After the console session has ended: the provider's end-session endpoint, reached
    by a page (a form's redirect chain may not leave the origin under the CSP)."""
    id_token = request.cookies.get(ID_TOKEN_COOKIE, "")
    target = "/console/login"
    if sso_configured():
        try:
            meta = await _metadata()
            end = meta.get("end_session_endpoint")
            if isinstance(end, str) and urlsplit(end).scheme in ("http", "https"):
                result = await _client().create_logout_url(
                    post_logout_redirect_uri=get_settings().base_url.rstrip("/") + "/console/login",
                    id_token_hint=id_token or None,
                    client_id=get_settings().oidc_client_id,
                )
                target = str(result["url"])
        except (OAuthError, OSError, ValueError, RuntimeError):
            target = "/console/login"
    if target == "/console/login":
        resp: Response = RedirectResponse(target, status_code=303)
    else:
        href = escape(target, quote=True)
        resp = HTMLResponse(
            f"""<!doctype html><html lang="zh-Hans"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0;url={href}"><title>退出 / Log out</title></head>
<body><p><a href="{href}">继续退出单点登录 / continue to log out of single sign-on</a></p>
</body></html>""",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )
    resp.delete_cookie(ID_TOKEN_COOKIE, path="/console")
    return resp


@router.post("/backchannel-logout")
async def backchannel_logout(logout_token: Annotated[str, Form()] = "") -> Response:
    """OpenID Connect Back-Channel Logout 1.0: the provider says a user logged out."""
    headers = {"Cache-Control": "no-store"}
    if not sso_configured() or not logout_token or len(logout_token) > 16_000:
        return JSONResponse({"error": "invalid_request"}, 400, headers=headers)
    who = await logout_subject(logout_token)
    if who is None:
        return JSONResponse({"error": "invalid_request"}, 400, headers=headers)
    issuer, subject = who
    with session_scope() as s:
        user = s.scalar(
            select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject)
        )
        if user is not None:
            user.session_version += 1
            record(s, user.username, "logout.sso_backchannel", user.username)
    return Response(status_code=200, headers=headers)


@router.post("/local-login")
def local_login_switch(
    request: Request,
    user: Annotated[Principal, Depends(need("admin"))],
    on: Annotated[str, Form()] = "",
) -> Response:
    """The admin's switch for password logins (settings page, users section)."""
    turn_on = on == "on"
    try:
        with session_scope() as s:
            set_local_login(s, turn_on, user.username)
            record(s, user, "settings.local_login", "on" if turn_on else "off", request)
    except NewsletterError as exc:
        return back("/console/settings#users", str(exc), "error")
    return back(
        "/console/settings#users",
        "本地账号登录已开启 / local logins on"
        if turn_on
        else "本地账号登录已关闭 / local logins off",
    )
