"""Console single sign-on against a real OpenID Provider.

The provider is panva's ``oidc-provider`` (a certified OpenID implementation, from
npm), run with the machine's Node.js (``tests/sso/provider/server.mjs``). The browser
is headless Chromium. Covered: login, the claim-to-role mapping (highest role wins),
a refused unknown role, logout at the console (RP-initiated, the provider's session
ends too), logout at the provider (back-channel: the console session ends), and
local accounts turned off by an admin and back on by the break-glass command.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from newsletter.cli.main import app as cli_app
from newsletter.core import clock
from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.devtools.sink import free_port
from newsletter.models import AuditLog
from newsletter.models.console import ROLES, User
from newsletter.web.console.sso_accounts import map_role
from tests.conftest import make_settings
from tests.console.conftest import serve
from tests.console.helpers import PASSWORDS

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = ROOT / "tests" / "sso" / "provider"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SECRET = "client-secret-only-for-this-test-0123456789"
ROLE_MAP = {
    "nl-admins": "admin",
    "nl-ops": "ops",
    "nl-editors": "editor",
    "nl-marketing": "marketing",
}
ACCOUNTS = {
    "ann": {"email": "ann@corp.example", "name": "安妮", "roles": ["nl-ops"]},
    "bob": {"email": "bob@corp.example", "name": "Bob", "roles": ["nl-marketing", "nl-admins"]},
    "eve": {"email": "eve@corp.example", "name": "Eve", "roles": ["contractors"]},
    # Same address as the local admin account: must never take it over.
    "mallory": {"email": "admin", "name": "M", "roles": ["nl-marketing"]},
}


def _npm_ci() -> None:
    with open(PROVIDER / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (PROVIDER / "node_modules" / "oidc-provider").is_dir():
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"],
                cwd=PROVIDER,
                check=True,
                capture_output=True,
                timeout=300,
            )


@pytest.fixture
def sso(tmp_path: Path, template_db: Path) -> Iterator[tuple[str, str, Settings]]:
    """(console base URL, provider issuer, settings): both running."""
    _npm_ci()
    app_port, op_port = free_port(), free_port()
    base, issuer = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{op_port}"
    env = dict(
        os.environ,
        PORT=str(op_port),
        NL_ACCOUNTS=json.dumps(ACCOUNTS),
        NL_CLIENT=json.dumps(
            {
                "client_id": "newsletter-console",
                "client_secret": SECRET,
                "redirect_uri": f"{base}/console/sso/callback",
                "post_logout_uri": f"{base}/console/login",
                "backchannel_uri": f"{base}/console/sso/backchannel-logout",
            }
        ),
    )
    proc = subprocess.Popen(
        ["node", "server.mjs"],
        cwd=PROVIDER,
        env=env,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready"), line
        s = make_settings(
            tmp_path,
            base_url=base,
            oidc_issuer=issuer,
            oidc_client_id="newsletter-console",
            oidc_client_secret=SECRET,
            oidc_scopes="openid email profile roles",
            oidc_role_map=ROLE_MAP,
            oidc_allow_private=True,  # the test provider listens on loopback
        )
        with serve(s, app_port, template_db):
            yield base, issuer, s
    finally:
        proc.terminate()
        proc.wait(10)


def _provider_login(page: Any, who: str) -> None:
    """Answer the provider's development login and consent pages."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", who)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if "/interaction/" in page.url:  # consent
        page.click("button[type=submit]")


def _sso_login(page: Any, base: str, who: str) -> None:
    page.goto(f"{base}/console/login")
    page.click("a[href^='/console/sso/login']")
    _provider_login(page, who)


def _user(username: str) -> User | None:
    with session_scope() as s:
        return s.scalar(select(User).where(User.username == username))


def _audit(action: str) -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(AuditLog.actor).where(AuditLog.action == action)))


def _local_login(base: str, who: str) -> httpx.Response:
    with httpx.Client(base_url=base, follow_redirects=False) as c:
        c.get("/console/login")
        page = c.get("/console/login").text
        if 'name="password"' not in page:  # local logins off: no password form at all
            return c.post("/console/login", data={"username": who, "password": PASSWORDS[who]})
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        return c.post(
            "/console/login",
            data={"username": who, "password": PASSWORDS[who], "csrf": csrf, "next": "/console/"},
        )


def test_sso_login_roles_logout_and_local_switch(sso: tuple[str, str, Settings]) -> None:
    from playwright.sync_api import sync_playwright

    base, issuer, _s = sso
    # A local session made before local logins are turned off.
    local = _local_login(base, "ops")
    assert local.status_code == 303, local.text[:300]
    local_cookie = local.cookies.get("nl_session")
    assert local_cookie

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            # 1. Login; the provider's group maps to ops.
            ctx = browser.new_context(locale="zh-CN")
            page = ctx.new_page()
            page.goto(f"{base}/console/login")
            assert page.locator("a[href^='/console/sso/login']").count() == 1
            page.click("a[href^='/console/sso/login']")
            assert page.url.startswith(issuer), page.url
            _provider_login(page, "ann")
            page.wait_for_url(f"{base}/console/")
            ann = _user("ann@corp.example")
            assert ann is not None and ann.role == "ops" and ann.auth_source == "oidc"
            assert ann.oidc_issuer == issuer and ann.oidc_subject == "ann"
            assert "安妮" in page.content()
            # ops cannot open the admin's settings page
            assert page.goto(f"{base}/console/settings").status == 403

            # 2. Logout at the console: the session ends, and the provider's too.
            page.goto(f"{base}/console/")
            page.locator("form[action='/console/logout'] button").first.click()
            page.wait_for_url(f"{issuer}/**")
            page.click("button[type=submit][value=yes]")
            page.wait_for_url(f"{base}/console/login**")
            page.goto(f"{base}/console/")
            assert page.url.startswith(f"{base}/console/login")
            page.click("a[href^='/console/sso/login']")
            page.wait_for_selector("input[name=login]")  # the provider asks again
            ctx.close()

            # 3. An unknown role is refused; nobody is created.
            ctx = browser.new_context()
            page = ctx.new_page()
            _sso_login(page, base, "eve")
            page.wait_for_url(f"{base}/console/sso/callback**")
            assert "没有控制台角色" in page.content()
            assert _user("eve@corp.example") is None
            assert "eve@corp.example" in _audit("login.sso_refused")
            assert page.goto(f"{base}/console/").url.startswith(f"{base}/console/login")
            ctx.close()

            # 4. The same address as a local account: a separate account, no takeover.
            ctx = browser.new_context()
            page = ctx.new_page()
            _sso_login(page, base, "mallory")
            page.wait_for_url(f"{base}/console/")
            local_admin = _user("admin")
            assert local_admin is not None and local_admin.auth_source == "local"
            assert local_admin.role == "admin"
            with session_scope() as s:
                m = s.scalar(select(User).where(User.oidc_subject == "mallory"))
                assert m is not None and m.username != "admin" and m.role == "marketing"
            ctx.close()

            # 5. Highest role wins; the admin turns local logins off.
            ctx = browser.new_context()
            page = ctx.new_page()
            _sso_login(page, base, "bob")
            page.wait_for_url(f"{base}/console/")
            bob = _user("bob@corp.example")
            assert bob is not None and bob.role == "admin"
            page.goto(f"{base}/console/settings#users")
            page.click("form[action='/console/sso/local-login'] button")
            page.wait_for_url(f"{base}/console/settings**")
            assert "本地账号登录已关闭" in page.content()

            refused = _local_login(base, "admin")
            assert refused.status_code == 403 and "nl_session" not in refused.cookies
            with session_scope() as s:
                from newsletter.web.console.switches import local_login_enabled

                assert not local_login_enabled(s)
            with httpx.Client(base_url=base) as c:
                r = c.get("/console/", cookies={"nl_session": local_cookie}, follow_redirects=False)
                assert r.status_code == 303 and "/console/login" in r.headers["location"]

            # 6. Logout at the provider: the console session follows (back-channel).
            page.goto(f"{issuer}/session/end")
            page.click("button[type=submit][value=yes]")
            page.wait_for_load_state()
            deadline = time.time() + 10
            while time.time() < deadline:
                if page.goto(f"{base}/console/").url.startswith(f"{base}/console/login"):
                    break
                time.sleep(0.3)
            assert page.url.startswith(f"{base}/console/login"), page.url
            assert _audit("logout.sso_backchannel")
            ctx.close()
        finally:
            browser.close()

    # 7. Break glass from the server's shell.
    out = CliRunner().invoke(cli_app, ["users", "local-login", "on"])
    assert out.exit_code == 0, out.output
    assert _local_login(base, "admin").status_code == 303


def test_forged_answers_are_refused(sso: tuple[str, str, Settings]) -> None:
    base, issuer, _s = sso
    with httpx.Client(base_url=base, follow_redirects=False) as c:
        # A callback without the state cookie, or with another state.
        r = c.get("/console/sso/callback", params={"code": "x", "state": "y"})
        assert r.status_code == 400 and "nl_session" not in r.cookies
        assert 'lang="zh-Hans"' in r.text and "单点登录失败" in r.text
        # The same refusal for a reader of the Traditional console, in Traditional.
        c.cookies.set("nl_lang", "zh-Hant")
        r = c.get("/console/sso/callback", params={"code": "x", "state": "y"})
        assert r.status_code == 400 and r.headers["content-language"] == "zh-Hant"
        assert 'lang="zh-Hant"' in r.text and "單點登錄失敗" in r.text
        assert "登錄請求已過期" in r.text and "返回登錄" in r.text and "单点" not in r.text
        c.cookies.delete("nl_lang")
        start = c.get("/console/sso/login", params={"next": "https://evil.example/"})
        assert start.status_code == 303 and start.headers["location"].startswith(issuer)
        r = c.get("/console/sso/callback", params={"code": "x", "state": "not-the-state"})
        assert r.status_code == 400 and "nl_session" not in r.cookies
        # The right state with a made-up code: the provider refuses the exchange.
        state = httpx.URL(start.headers["location"]).params["state"]
        r = c.get("/console/sso/callback", params={"code": "made-up", "state": state})
        assert r.status_code == 400 and "nl_session" not in r.cookies
        assert "Traceback" not in r.text and "/work/" not in r.text
        # A logout token signed by someone else.
        from joserfc import jwt
        from joserfc.jwk import RSAKey

        key = RSAKey.generate_key(2048)
        forged = jwt.encode(
            {"alg": "RS256", "kid": "x"},
            {
                "iss": issuer,
                "aud": "newsletter-console",
                "iat": int(clock.timestamp()),
                "jti": "1",
                "sub": "ann",
                "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
            },
            key,
        )
        r = c.post("/console/sso/backchannel-logout", data={"logout_token": forged})
        assert r.status_code == 400
        # Local logins cannot be turned off from the API without an SSO admin.
        assert _local_login(base, "admin").status_code == 303


def test_no_sso_no_routes(client: Any) -> None:
    assert client.get("/console/sso/login").status_code == 404
    assert client.get("/console/sso/callback?code=a&state=b").status_code == 404
    assert (
        client.post("/console/sso/backchannel-logout", data={"logout_token": "x"}).status_code
        == 400
    )
    assert "/console/sso/login" not in client.get("/console/login").text


def test_local_logins_cannot_be_switched_off_without_sso(client: Any) -> None:
    from tests.console.helpers import login

    token = login(client, "admin")
    r = client.post("/console/sso/local-login", data={"on": "off", "csrf": token})
    assert r.status_code == 303
    assert "local-login" not in r.headers["location"]
    out = CliRunner().invoke(cli_app, ["users", "local-login", "off"])
    assert out.exit_code == 1 and "single sign-on is not configured" in out.output
    # still on: the admin can log in with a password
    with session_scope() as s:
        from newsletter.web.console.switches import local_login_enabled

        assert local_login_enabled(s)


_claims = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    claims=st.dictionaries(st.text(max_size=10), _claims, max_size=5),
    claim=st.sampled_from(["roles", "groups", "realm.roles", ""]),
    mapping=st.dictionaries(
        st.text(max_size=10), st.sampled_from([*ROLES, "root", ""]), max_size=4
    ),
)
def test_role_mapping_never_invents_a_role(
    claims: dict[str, Any], claim: str, mapping: dict[str, str]
) -> None:
    role = map_role(claims, claim, mapping)
    assert role is None or role in ROLES
    if role is not None:
        value: Any = claims
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values = [value] if isinstance(value, str) else value
        assert isinstance(values, list)
        sources = [mapping.get(v) if mapping else v for v in values if isinstance(v, str)]
        assert role in sources
        assert mapping or role != "admin"


def test_role_mapping_examples() -> None:
    assert map_role({"roles": ["nl-ops", "nl-admins"]}, "roles", ROLE_MAP) == "admin"
    assert map_role({"roles": "nl-editors"}, "roles", ROLE_MAP) == "editor"
    assert map_role({"roles": ["admin"]}, "roles", ROLE_MAP) is None  # mapped names only
    # with no map, a value may name a role itself, but never admin: an admin is granted
    # only by a map the installation wrote (a provider's user cannot name themselves admin)
    assert map_role({"roles": ["admin"]}, "roles", {}) is None
    assert map_role({"roles": ["admin", "ops"]}, "roles", {}) == "ops"
    assert map_role({"realm": {"roles": ["nl-ops"]}}, "realm.roles", ROLE_MAP) == "ops"
    assert map_role({"roles": [{"x": 1}, 3]}, "roles", ROLE_MAP) is None
