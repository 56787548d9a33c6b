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
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from html import escape
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy import select

from newsletter.core import clock
from newsletter.core.caches import process_cache
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError
from newsletter.core.safety.headers import clean_text
from newsletter.models import utcnow
from newsletter.models.console import ROLES, ApiToken, User
from newsletter.web.console.auth import (
    ROLE_RANK,
    SESSION_SECONDS,
    Principal,
    issue_session,
    need,
    record,
    safe_next,
    secure_cookies,
)
from newsletter.web.console.flash import back
from newsletter.web.console.oidc_client import OAuth, OAuthError
from newsletter.web.console.switches import set_local_login, sso_configured

__all__ = ["map_role", "router"]

log = logging.getLogger(__name__)


def _id_token_claims(token: dict[str, Any]) -> Any:
    """Authlib's ID-token checks (signature, issuer, audience, nonce, at_hash), with expiry and
    issue time read from the product's one clock rather than the process's wall clock."""
    from authlib.oidc.core import CodeIDToken

    access_token = token.get("access_token")

    class ProductClockIDToken(CodeIDToken):  # type: ignore[misc]
        def __init__(
            self,
            claims: Any,
            header: Any,
            options: Any = None,
            params: dict[str, Any] | None = None,
        ) -> None:
            params = dict(params or {})
            if access_token:
                params["access_token"] = access_token
            super().__init__(claims, header, options, params)

        def validate(self, now: Any = None, leeway: int = 0) -> None:
            super().validate(now=int(clock.timestamp()), leeway=leeway)

    return ProductClockIDToken


router = APIRouter(prefix="/console/sso", include_in_schema=False)

STATE_COOKIE = "nl_sso_state"
ID_TOKEN_COOKIE = "nl_sso_id"
STATE_SECONDS = 600
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"

_clients: dict[tuple[str, str, str], Any] = process_cache({})


def _client() -> Any:
    cfg = get_settings()
    secret = cfg.oidc_client_secret.get_secret_value()
    key = (cfg.oidc_issuer, cfg.oidc_client_id, hashlib.sha256(secret.encode()).hexdigest())
    client = _clients.get(key)
    if client is None:
        oauth = OAuth()
        oauth.register(
            "console",
            client_id=cfg.oidc_client_id,
            client_secret=secret,
            server_metadata_url=cfg.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={
                "scope": cfg.oidc_scopes,
                "code_challenge_method": "S256",
                "timeout": 10,
            },
        )
        client = oauth.create_client("console")
        _clients.clear()
        _clients[key] = client
    return client


async def _metadata() -> dict[str, Any]:
    meta: dict[str, Any] = await _client().load_server_metadata()
    # OpenID Connect Discovery §4.3: the document must name the configured issuer.
    if meta.get("issuer", "").rstrip("/") != get_settings().oidc_issuer.rstrip("/"):
        raise OAuthError(description="issuer mismatch")
    return meta


def _signer() -> URLSafeTimedSerializer:
    keys = [k.decode() for k in get_settings().secrets()]
    return URLSafeTimedSerializer(list(reversed(keys)), salt="console-sso")


def _redirect_uri() -> str:
    return get_settings().base_url.rstrip("/") + "/console/sso/callback"


def _claim(claims: dict[str, Any], path: str) -> Any:
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
    raw = _claim(claims, claim)
    values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    roles: set[str] = set()
    for value in values:
        if not isinstance(value, str):
            continue
        role = role_map.get(value) if role_map else (value if value != "admin" else None)
        if role in ROLES:
            roles.add(role)
    return max(roles, key=ROLE_RANK.__getitem__) if roles else None


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
    if _claim(claims, cfg.oidc_role_claim) is None and meta.get("userinfo_endpoint"):
        try:
            extra = await client.userinfo(token=token)
            if str(extra.get("sub")) == str(claims.get("sub")):
                claims = {**dict(extra), **claims}
        except (OAuthError, OSError, ValueError):
            pass
    outcome = _account(request, claims, str(meta["issuer"]))
    if isinstance(outcome, HTMLResponse):
        return outcome
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


def _account(request: Request, claims: dict[str, Any], issuer: str) -> User | HTMLResponse:
    cfg = get_settings()
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        return _refused(
            request, "身份提供方的答复缺少用户标识 / the provider's answer has no subject", 400
        )
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
        return _refused(
            request,
            "你的账号没有控制台角色或已停用，请联系管理员 / your account has no console role "
            "or is deactivated: ask an admin",
        )
    assert user is not None
    return user


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


_keys_fetched_at: dict[str, float] = process_cache(
    {}
)  # issuer -> when its keys were last fetched again
KEYS_REFETCH_SECONDS = 60

#: How long a logout token's jti is remembered: longer than a token is accepted (iat ± 300 s).
JTI_SECONDS = 660
_seen_jti: dict[str, float] = process_cache(
    {}
)  # key -> until when (without Redis: this process only)


def _first_use(issuer: str, jti: str) -> bool:
    """True the first time this issuer's logout token ``jti`` is seen (RFC: a replayed
    logout token must not log the user out again, e.g. after they signed back in).
    Remembered in Redis when there is one, so every web process agrees."""
    cfg = get_settings()
    key = hashlib.sha256(f"{issuer}\0{jti}".encode()).hexdigest()
    if cfg.redis_url:
        try:
            from newsletter.core.redis import redis_client

            return bool(
                redis_client().set(f"{cfg.redis_prefix}sso-jti:{key}", 1, nx=True, ex=JTI_SECONDS)
            )
        except Exception as exc:  # Redis down: remember here rather than accept replays
            log.warning("logout token ids kept in this process: %s", exc.__class__.__name__)
    now = clock.timestamp()
    for k in [k for k, until in _seen_jti.items() if until < now]:
        del _seen_jti[k]
    if key in _seen_jti:
        return False
    _seen_jti[key] = now + JTI_SECONDS
    return True


def _refetch_keys(issuer: str, token: str, keys: Any) -> bool:
    """Should a logout token that failed against the cached keys send us to the provider
    for its keys again? Only when it names a key id the cached set lacks, once a minute."""
    try:
        head = json.loads(base64.urlsafe_b64decode(token.split(".", 1)[0] + "=="))
    except (ValueError, TypeError):
        return False
    kid = head.get("kid") if isinstance(head, dict) else None
    listed = keys.get("keys") if isinstance(keys, dict) else None
    known = {k.get("kid") for k in listed or [] if isinstance(k, dict)}
    if not isinstance(kid, str) or kid in known:
        return False
    now = time.monotonic()
    if now - _keys_fetched_at.get(issuer, float("-inf")) < KEYS_REFETCH_SECONDS:
        return False
    _keys_fetched_at[issuer] = now
    return True


@router.post("/backchannel-logout")
async def backchannel_logout(logout_token: Annotated[str, Form()] = "") -> Response:
    """OpenID Connect Back-Channel Logout 1.0: the provider says a user logged out."""
    headers = {"Cache-Control": "no-store"}
    if not sso_configured() or not logout_token or len(logout_token) > 16_000:
        return JSONResponse({"error": "invalid_request"}, 400, headers=headers)
    cfg = get_settings()
    try:
        meta = await _metadata()
        client = _client()
        algs = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        algs = [a for a in algs if a != "none"]
        registry = JWSRegistry(algorithms=algs)
        keys = await client.fetch_jwk_set()
        try:
            tok = jwt.decode(logout_token, KeySet.import_key_set(keys), registry=registry)
        except JoseError:
            # The provider may have rolled its keys over: fetch them again, but only for a
            # key id we have not seen, and not more than once a minute (anyone can post here).
            if not _refetch_keys(str(meta["issuer"]), logout_token, keys):
                raise
            tok = jwt.decode(
                logout_token,
                KeySet.import_key_set(await client.fetch_jwk_set(force=True)),
                registry=registry,
            )
    except (OAuthError, JoseError, OSError, ValueError, KeyError) as exc:
        log.warning("back-channel logout refused: %s", exc.__class__.__name__)
        return JSONResponse({"error": "invalid_request"}, 400, headers=headers)
    claims = tok.claims
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    events = claims.get("events")
    now = clock.timestamp()
    iat = claims.get("iat")
    ok = (
        str(claims.get("iss", "")).rstrip("/") == str(meta["issuer"]).rstrip("/")
        and cfg.oidc_client_id in auds
        and isinstance(events, dict)
        and BACKCHANNEL_EVENT in events
        and "nonce" not in claims
        and isinstance(iat, (int, float))
        and abs(now - iat) < 300
        and (not isinstance(claims.get("exp"), (int, float)) or claims["exp"] > now - 60)
        and isinstance(claims.get("sub"), str)
        and isinstance(claims.get("jti"), str)
        and 0 < len(claims["jti"]) <= 255
    )
    if not ok:
        log.warning("back-channel logout refused: claims %s", sorted(claims))
        return JSONResponse({"error": "invalid_request"}, 400, headers=headers)
    if not _first_use(str(meta["issuer"]), claims["jti"]):
        log.warning("back-channel logout refused: a logout token used again")
        return JSONResponse({"error": "invalid_request"}, 400, headers=headers)
    with session_scope() as s:
        user = s.scalar(
            select(User).where(
                User.oidc_issuer == str(meta["issuer"]), User.oidc_subject == claims["sub"]
            )
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
