"""Authentication, roles and CSRF for the console and the JSON API.

* **Sessions** are cookies signed with itsdangerous (``URLSafeTimedSerializer``
  keyed by the settings' secret key): ``{"u": user id, "v": session version,
  "n": CSRF nonce}``.  HttpOnly, SameSite=Lax, ``Secure`` when ``base_url`` is
  https, 12 hours.  Nothing secret is in the cookie; it is only unforgeable.
* **API tokens** (``Authorization: Bearer nlt_…``) act with the role of their
  owner.  Only their SHA-256 is stored.
* **Roles**: ``need("marketing")`` lets every role in, ``need("ops")`` admin and
  ops, ``need("admin")`` only admin.  The same dependency authenticates,
  checks the role and, for unsafe methods on a cookie session, the CSRF token
  (header ``X-CSRF-Token`` or form field ``csrf``).  Bearer requests carry no
  ambient credential, so they need no CSRF token.
* Anonymous requests get 401 under ``/api`` and a 303 to the login page in
  the console.  The ``next`` parameter only ever names a local path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import HTTPException, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from newsletter.core.audit import audit
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.resources import resource_path
from newsletter.models import utcnow
from newsletter.models.console import ROLES, ApiToken, User
from newsletter.web.console.switches import local_login_enabled

__all__ = [
    "CSRF_HEADER",
    "Principal",
    "ROLE_RANK",
    "SESSION_COOKIE",
    "authenticate",
    "check_password",
    "csrf_token",
    "hash_password",
    "issue_session",
    "need",
    "new_api_token",
    "record",
    "safe_next",
]

SESSION_COOKIE = "nl_session"
ANON_COOKIE = "nl_anon"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ROLE_RANK = {"marketing": 1, "editor": 2, "ops": 3, "admin": 4}
TOKEN_PREFIX = "nlt_"
#: The login delays (``core.ratelimit.reserve_login``): a key idle this long starts
#: again; free attempts per (account, address) and per address.
LOGIN_WINDOW = 900
LOGIN_PER_USER = 5
LOGIN_PER_IP = 30

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
#: A real hash, verified against when the user does not exist, so timing does not tell.
_DUMMY = _hasher.hash("not-a-password-" + secrets.token_hex(8))


def _common_passwords() -> frozenset[str]:
    path = resource_path("data", "common-passwords.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(x.strip().lower() for x in lines if x.strip() and not x.startswith("#"))


_COMMON = _common_passwords()


def password_problem(password: str, names: tuple[str, ...] = ()) -> str | None:
    """Why ``password`` is refused (zh/en), or None: length, common, repetitive, own name."""
    if len(password) < 10:
        return "password must have at least 10 characters / 密码至少 10 个字符"
    low = password.lower()
    if low in _COMMON:
        return "this password is too common / 密码过于常见"
    if len(set(low)) < 5:
        return "password needs at least 5 different characters / 密码至少包含 5 个不同字符"
    for name in names:
        n = name.strip().lower()
        local = n.split("@")[0]
        for part in {n, local}:
            if len(part) >= 3 and (part in low or low in part):
                return "password must not contain the user name / 密码不能包含用户名"
    return None


def hash_password(password: str, names: tuple[str, ...] = ()) -> str:
    problem = password_problem(password, names)
    if problem is not None:
        raise ValueError(problem)
    return _hasher.hash(password)


def check_password(user: User | None, password: str) -> bool:
    """Constant-work check; rehashes when argon2 parameters changed (caller commits)."""
    try:
        if user is None or user.auth_source != "local":
            _hasher.verify(_DUMMY, password)  # the same work: timing tells nothing
            return False
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_token() -> tuple[str, str, str]:
    """(token shown once, its prefix, its hash to store)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token[:12], token_hash(token)


def _serializer(salt: str) -> URLSafeTimedSerializer:
    keys = [k.decode() for k in get_settings().secrets()]
    # itsdangerous signs with the last key and accepts all of them.
    return URLSafeTimedSerializer(list(reversed(keys)), salt=salt)


def secure_cookies() -> bool:
    return get_settings().base_url.lower().startswith("https://")


def issue_session(response: Response, user: User) -> None:
    value = _serializer("console-session").dumps(
        {"u": user.id, "v": user.session_version, "n": secrets.token_urlsafe(16)}
    )
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(),
        path="/",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookies()
    )


def anon_nonce(request: Request, response: Response | None = None) -> str:
    """A per-browser nonce for the login form's CSRF token (before there is a session)."""
    value = request.cookies.get(ANON_COOKIE, "")
    if len(value) < 16:
        value = secrets.token_urlsafe(16)
        request.state.new_anon = value
    if response is not None and getattr(request.state, "new_anon", None):
        set_anon_cookie(response, value)
    return value


def set_anon_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        ANON_COOKIE,
        value,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(),
        path="/console",
    )


def csrf_token(nonce: str) -> str:
    key = get_settings().secrets()[0]
    return hmac.new(key, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def csrf_ok(nonce: str, supplied: str | None) -> bool:
    if not nonce or not supplied:
        return False
    for key in get_settings().secrets():
        want = hmac.new(key, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(want, supplied):
            return True
    return False


@dataclass(slots=True)
class Principal:
    user_id: int
    username: str
    display_name: str
    role: str
    via: str  # "session" | "token"
    nonce: str = ""
    #: A session of a local account whose role needs a second factor it does not have
    #: yet: only the enrolment page (and logout) are open to it. API tokens never are.
    must_enrol: bool = False

    @property
    def csrf(self) -> str:
        return csrf_token(self.nonce) if self.nonce else ""

    def can(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def authenticate(request: Request) -> Principal | None:
    """The principal of a request (session cookie or bearer token), or None."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    principal = _authenticate(request)
    request.state.principal = principal
    return principal


def _authenticate(request: Request) -> Principal | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return _from_token(header[7:].strip())
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer("console-session").loads(raw, max_age=SESSION_SECONDS)
        uid, version, nonce = int(data["u"]), int(data["v"]), str(data["n"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    with session_scope() as s:
        user = s.get(User, uid)
        if user is None or not user.active or user.session_version != version:
            return None
        if user.auth_source == "local" and not local_login_enabled(s):
            return None  # local accounts turned off: their sessions end with them
        from newsletter.web.console.twofactor import must_enrol

        return Principal(
            user.id,
            user.username,
            user.display_name,
            user.role,
            "session",
            nonce,
            must_enrol=must_enrol(s, user),
        )


def _from_token(token: str) -> Principal | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    now = utcnow()
    with session_scope() as s:
        row = s.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_hash(token))
        ).first()
        if row is None:
            return None
        tok, user = row
        if tok.revoked_at is not None or not user.active:
            return None
        if user.auth_source == "local" and not local_login_enabled(s):
            return None
        if tok.expires_at is not None and tok.expires_at <= now:
            return None
        if tok.last_used_at is None or (now - tok.last_used_at).total_seconds() > 60:
            tok.last_used_at = now
        return Principal(user.id, user.username, user.display_name, user.role, "token")


def _login_redirect(request: Request) -> HTTPException:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(
        status_code=303, headers={"Location": f"/console/login?next={quote(target, safe='')}"}
    )


async def _supplied_csrf(request: Request) -> str | None:
    value = request.headers.get(CSRF_HEADER)
    if value:
        return value
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        field = form.get("csrf")
        return field if isinstance(field, str) else None
    return None


#: role required by each endpoint function (read by the tests that walk app.routes).
REQUIRED: dict[Callable[..., Any], str] = {}


#: Where a session that must first enrol a second factor is sent.
ENROL_PATH = "/console/account/2fa"


def need(role: str, *, enrolling: bool = False) -> Callable[[Request], Any]:
    """Dependency: authenticated, at least ``role``, and a CSRF token on unsafe session calls.

    A session that must enrol a second factor first reaches only the routes declared
    ``enrolling`` (the enrolment page, logout); elsewhere the console sends it there and
    the API answers 403."""
    assert role in ROLES

    async def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        is_api = request.url.path.startswith("/api")
        if principal is None:
            if is_api:
                raise HTTPException(
                    401, "authentication required / 需要登录", {"WWW-Authenticate": "Bearer"}
                )
            raise _login_redirect(request)
        if principal.must_enrol and not enrolling:
            if is_api:
                raise HTTPException(
                    403, "请先启用两步验证 / two-factor enrolment required (console → 我的账户)"
                )
            raise HTTPException(status_code=303, headers={"Location": ENROL_PATH})
        if not principal.can(role):
            raise HTTPException(403, f"role {role} required / 权限不足")
        if (
            request.method in UNSAFE
            and principal.via == "session"
            and not csrf_ok(principal.nonce, await _supplied_csrf(request))
        ):
            raise HTTPException(403, "CSRF token missing or invalid / 表单已过期，请刷新页面")
        return principal

    dependency.role = role  # type: ignore[attr-defined]
    return dependency


def safe_next(value: str | None, default: str = "/console/") -> str:
    """A local path to go to after login; anything else (other host, scheme, //x) → default."""
    if not value:
        return default
    value = value.strip()
    if (
        any(c in value for c in "\\\r\n\t\x00")
        or not value.startswith("/")
        or value.startswith("//")
    ):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    if not (parts.path.startswith("/console") or parts.path.startswith("/api")):
        return default
    return value


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def record(
    s: Any,
    actor: Principal | str,
    action: str,
    target: str = "",
    request: Request | None = None,
    **detail: object,
) -> None:
    """Append an audit-log row (who did what, from where)."""
    name = actor.username if isinstance(actor, Principal) else actor
    audit(
        s,
        name,
        action,
        target,
        remote=client_ip(request) if request is not None else None,
        **detail,
    )
