"""Security of the console and the JSON API: roles on every route, CSRF, login
throttling, open redirects, session cookies and API tokens."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.core.db import session_scope
from newsletter.models import AuditLog
from newsletter.models.console import ApiToken, User
from newsletter.web.app import create_app
from newsletter.web.console.services import create_token
from tests.conftest import MovableClock
from tests.console.helpers import PASSWORDS, client_as, csrf_of, login

#: Routes that anyone may call (the login form, the language switch, static assets, docs).
PUBLIC = {
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    # the second step: needs the signed cookie the right password gave, and a code
    ("POST", "/console/login/code"),
    ("GET", "/console/lang"),
    ("GET", "/console/static/{path:path}"),
    # single sign-on: before a session exists (404 unless it is configured; the callback
    # needs the signed state cookie, the back-channel a token signed by the provider)
    ("GET", "/console/sso/login"),
    ("GET", "/console/sso/callback"),
    ("GET", "/console/sso/logout"),
    ("POST", "/console/sso/backchannel-logout"),
}
SAMPLE = {
    "issue_id": "1",
    "send_id": "1",
    "list_id": "1",
    "user_id": "1",
    "token_id": "1",
    "action": "pause",
    "output": "web",
    "job_id": "abcdefgh1234",
    "email": "x@example.org",
    "path:path": "console.css",
    "path": "console.css",
    "subscriber_id": "1",
    "endpoint_id": "1",
    "step_id": "1",
    "slug": "weekly",
}
RANK = {"marketing": 1, "editor": 2, "ops": 3, "admin": 4}


def _routes() -> list[tuple[str, str, str | None]]:
    """(method, path template, required role) for every route under /console and /api."""
    flat: list = []
    for r in create_app().routes:
        if isinstance(r, APIRoute):
            flat.append(r)
        elif hasattr(r, "effective_route_contexts"):  # FastAPI >= 0.16x keeps included routers
            flat.extend(r.effective_route_contexts())
    out = []
    for r in flat:
        if not r.path.startswith(("/console", "/api")):
            continue
        role = None
        for dep in r.dependant.dependencies:
            role = getattr(dep.call, "role", None) or role
        for m in sorted(r.methods or ()):
            out.append((m, r.path, role))
    return out


def _url(path: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: SAMPLE[m.group(1)], path)


ROUTES = _routes()


def test_every_route_declares_a_role() -> None:
    assert len(ROUTES) > 50
    missing = [(m, p) for m, p, role in ROUTES if role is None and (m, p) not in PUBLIC]
    assert not missing, f"routes without a role check: {missing}"


def test_anonymous_is_refused_everywhere(client: TestClient) -> None:
    for method, path, role in ROUTES:
        if role is None:
            continue
        r = client.request(method, _url(path))
        if path.startswith("/api"):
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers.get("www-authenticate") == "Bearer"
        else:
            assert r.status_code == 303, (method, path, r.status_code)
            assert r.headers["location"].startswith("/console/login?next=%2Fconsole")


@pytest.mark.parametrize("who", ["marketing", "editor", "ops"])
def test_roles_are_enforced_on_every_route(users: dict[str, str], who: str) -> None:
    """With a valid session *and* CSRF token, a lower role still gets 403 on every higher route."""
    c, csrf = client_as(who)
    checked = 0
    for method, path, role in ROUTES:
        if role is None or (method == "POST" and path == "/console/logout"):
            continue
        r = c.request(method, _url(path), headers={"X-CSRF-Token": csrf})
        if RANK[role] > RANK[who]:
            assert r.status_code == 403, (who, method, path, r.status_code, r.text[:200])
            checked += 1
        else:
            assert r.status_code not in (401, 403), (who, method, path, r.status_code, r.text[:200])
            assert r.status_code < 500, (who, method, path, r.status_code, r.text[:300])
    assert checked > (25 if who == "marketing" else 10)


def test_marketing_cannot_run_ops_actions_with_a_token(users: dict[str, str]) -> None:
    with session_scope() as s:
        uid = s.scalar(select(User.id).where(User.username == "marketing"))
    tok = create_token("test", uid, "t")["token"]
    c = TestClient(create_app(), base_url="https://testserver")
    h = {"Authorization": f"Bearer {tok}"}
    assert c.get("/api/me", headers=h).json()["role"] == "marketing"
    assert c.get("/api/stats/trends", headers=h).status_code == 200
    for method, url in [
        ("POST", "/api/issues/1/approve"),
        ("POST", "/api/sends/1/start"),
        ("POST", "/api/sends/1/cancel"),
        ("GET", "/api/subscribers"),
        ("POST", "/api/suppressions"),
        ("GET", "/api/users"),
    ]:
        assert c.request(method, url, headers=h).status_code == 403, url


def test_api_tokens_are_hashed_at_rest_and_revocable(users: dict[str, str]) -> None:
    with session_scope() as s:
        uid = s.scalar(select(User.id).where(User.username == "ops"))
    out = create_token("test", uid, "script")
    tok = out["token"]
    with session_scope() as s:
        row = s.get(ApiToken, out["id"])
        assert row is not None
        assert row.token_hash == hashlib.sha256(tok.encode()).hexdigest()
        assert tok not in (row.prefix, row.token_hash, row.name)
    c = TestClient(create_app(), base_url="https://testserver")
    h = {"Authorization": f"Bearer {tok}"}
    assert c.get("/api/me", headers=h).json() == {
        "username": "ops",
        "display_name": "运营小王",
        "role": "ops",
        "via": "token",
    }
    # A bearer request carries no ambient credential: no CSRF token needed.
    assert c.post("/api/segments/count", json={"definition": None}, headers=h).status_code == 200
    assert (
        c.get("/api/me", headers={"Authorization": "Bearer " + tok[:-1] + "x"}).status_code == 401
    )
    r = c.delete(f"/api/tokens/{out['id']}", headers=h)
    assert r.status_code == 204
    assert c.get("/api/me", headers=h).status_code == 401


def test_passwords_are_argon2_hashed(users: dict[str, str]) -> None:
    with session_scope() as s:
        for u in s.scalars(select(User)):
            assert u.password_hash.startswith("$argon2id$")
            assert PASSWORDS[u.username] not in u.password_hash


def test_csrf_is_refused_without_a_token(client: TestClient, users: dict[str, str]) -> None:
    csrf = login(client, "admin")
    for url in [
        "/console/subscribers/suppressions",
        "/console/settings/users",
        "/console/issues/1/approve",
        "/console/sends/1/cancel",
        "/console/logout",
    ]:
        assert client.post(url, data={"email": "a@example.org"}).status_code == 403, url
        assert client.post(url, data={"csrf": "0" * 64}).status_code == 403, url
    assert client.post("/api/suppressions", json={"email": "a@example.org"}).status_code == 403
    assert (
        client.post(
            "/api/suppressions", json={"email": "a@example.org"}, headers={"X-CSRF-Token": "bad"}
        ).status_code
        == 403
    )
    # With the token the same request works.
    r = client.post(
        "/api/suppressions", json={"email": "a@example.org"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 201, r.text
    # Another session's token is not accepted.
    other, other_csrf = client_as("admin")
    assert (
        client.post(
            "/api/suppressions",
            json={"email": "b@example.org"},
            headers={"X-CSRF-Token": other_csrf},
        ).status_code
        == 403
    )
    assert (
        other.post(
            "/api/suppressions",
            json={"email": "b@example.org"},
            headers={"X-CSRF-Token": other_csrf},
        ).status_code
        == 201
    )


def test_login_form_needs_its_csrf_token(client: TestClient) -> None:
    r = client.post("/console/login", data={"username": "ops", "password": PASSWORDS["ops"]})
    assert r.status_code == 403
    assert "nl_session" not in r.cookies


def test_session_cookie_flags(client: TestClient) -> None:
    token = csrf_of(client)
    r = client.post(
        "/console/login", data={"username": "ops", "password": PASSWORDS["ops"], "csrf": token}
    )
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "nl_session=" in cookie
    for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
        assert flag.lower() in cookie.lower(), cookie
    # A tampered cookie is ignored.
    value = client.cookies.get("nl_session")
    assert value
    c2 = TestClient(create_app(), base_url="https://testserver", follow_redirects=False)
    c2.cookies.set("nl_session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert c2.get("/api/me").status_code == 401


def test_logout_and_deactivation_end_sessions(client: TestClient) -> None:
    csrf = login(client, "ops")
    assert client.get("/api/me").status_code == 200
    admin, admin_csrf = client_as("admin")
    with session_scope() as s:
        uid = s.scalar(select(User.id).where(User.username == "ops"))
    r = admin.patch(
        f"/api/users/{uid}", json={"active": False}, headers={"X-CSRF-Token": admin_csrf}
    )
    assert r.status_code == 200, r.text
    assert client.get("/api/me").status_code == 401
    assert client.post("/console/logout", data={"csrf": csrf}).status_code in (303, 403)


def test_login_is_rate_limited(client: TestClient) -> None:
    token = csrf_of(client)
    codes = []
    for _ in range(7):
        r = client.post(
            "/console/login", data={"username": "ops", "password": "wrong-password", "csrf": token}
        )
        codes.append(r.status_code)
    assert codes[:5] == [401] * 5
    assert codes[5:] == [429, 429]
    # Even the right password is refused while throttled.
    r = client.post(
        "/console/login", data={"username": "ops", "password": PASSWORDS["ops"], "csrf": token}
    )
    assert r.status_code == 429
    assert "nl_session" not in r.cookies
    # Other users are not locked out by it.
    login(client, "marketing")
    with session_scope() as s:
        actions = [a.action for a in s.scalars(select(AuditLog).where(AuditLog.target == "ops"))]
    assert actions.count("login.failed") == 5 and "login.throttled" in actions


def _attempt(c: TestClient, user: str, password: str) -> tuple[int, int]:
    """(status, Retry-After or 0) of one login attempt."""
    r = c.post("/console/login", data={"username": user, "password": password, "csrf": csrf_of(c)})
    return r.status_code, int(r.headers.get("Retry-After", 0))


def test_a_stranger_cannot_lock_a_user_out_and_his_own_delay_grows(
    users: dict[str, str], moved_clock: MovableClock
) -> None:
    """Failures for ops from a stranger's address slow down that address for ops (a
    growing delay), never ops at her own address; a success clears her own delay."""
    app = create_app()
    stranger = TestClient(app, base_url="https://testserver", client=("203.0.113.9", 5555))
    owner = TestClient(
        app, base_url="https://testserver", client=("198.51.100.7", 6666), follow_redirects=False
    )
    with stranger, owner:
        codes = [_attempt(stranger, "ops", f"guess-{k}") for k in range(7)]
        assert [c for c, _ in codes] == [401] * 5 + [429, 429]
        first_wait = codes[5][1]
        assert 0 < first_wait <= 31
        # the owner, at her own address, at the same moment: not locked out
        assert _attempt(owner, "ops", PASSWORDS["ops"])[0] == 303
        # the stranger's delay passes, he fails again: the next delay is longer
        moved_clock.advance(first_wait + 1)
        assert _attempt(stranger, "ops", "guess-again")[0] == 401
        code, second_wait = _attempt(stranger, "ops", "guess-more")
        assert code == 429 and second_wait > first_wait
        # even the right password waits at the stranger's address (the delay is per pair)
        assert _attempt(stranger, "ops", PASSWORDS["ops"])[0] == 429
    # later, in a new browser, the owner mistypes a few times and still gets in: her
    # pair has its own count
    with TestClient(
        app, base_url="https://testserver", client=("198.51.100.7", 7777), follow_redirects=False
    ) as owner:
        assert [_attempt(owner, "ops", "typo")[0] for _ in range(3)] == [401] * 3
        assert _attempt(owner, "ops", PASSWORDS["ops"])[0] == 303


def _assert_local(loc: str) -> None:
    """The browser would stay on this host, inside the console."""
    assert "\r" not in loc and "\n" not in loc and "\\" not in loc
    resolved = urlsplit(urljoin("https://testserver/console/login", loc))
    assert resolved.scheme == "https" and resolved.netloc == "testserver", loc
    assert resolved.path.startswith("/console/"), loc


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "/console/%0d%0aSet-Cookie:x=1",
        " //evil.example",
        "/%2F%2Fevil.example",
        "https:evil.example",
        "/public/../..//evil",
        "///evil.example",
        "/console\\@evil.example",
    ],
)
def test_no_open_redirect(client: TestClient, target: str) -> None:
    token = csrf_of(client)
    r = client.post(
        "/console/login",
        data={"username": "ops", "password": PASSWORDS["ops"], "csrf": token, "next": target},
    )
    assert r.status_code == 303
    _assert_local(r.headers["location"])
    r = client.get("/console/lang", params={"to": "en", "next": target})
    _assert_local(r.headers["location"])
    r = client.get("/console/login", params={"next": target})
    assert 'evil.example"' not in r.text


def test_local_next_is_kept(client: TestClient) -> None:
    token = csrf_of(client)
    r = client.post(
        "/console/login",
        data={
            "username": "ops",
            "password": PASSWORDS["ops"],
            "csrf": token,
            "next": "/console/sends?x=1",
        },
    )
    assert r.headers["location"] == "/console/sends?x=1"


def test_openapi_document_lists_the_api(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    for p in (
        "/api/issues",
        "/api/sends/{send_id}",
        "/api/imports",
        "/api/stats/trends",
        "/api/users",
        "/api/segments/count",
    ):
        assert p in paths, p
    assert not any(p.startswith("/console") for p in paths)


def test_console_pages_send_security_headers(client: TestClient) -> None:
    login(client, "ops")
    r = client.get("/console/issues")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "SAMEORIGIN"
    assert r.headers["cache-control"] == "no-store"


def test_static_files_do_not_escape_their_directory(client: TestClient) -> None:
    assert client.get("/console/static/console.css").status_code == 200
    for bad in ("../console/auth.py", "..%2Fconsole%2Fauth.py", "%2e%2e/app.py"):
        assert client.get("/console/static/" + bad).status_code == 404
