"""Single sign-on against a hostile world, without the browser: what the provider's
answers do to accounts, sessions and API tokens, and what an outsider's logout
tokens can make the console do.

The provider here is a table of files (discovery document and keys) served over
HTTP by ``tests/httpserve.py``: the back-channel endpoint reads nothing else. The
full flow against a certified provider is ``tests/console/test_sso.py``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.requests import Request

from newsletter.core import clock
from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.models.console import User
from newsletter.web.app import create_app
from newsletter.web.console.services.users import create_token
from newsletter.web.console.sso_accounts import account_for
from tests.httpserve import serve_paths

ISSUER = "https://id.corp.example"


def _request() -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/console/sso/callback",
            "headers": [],
            "client": ("203.0.113.5", 4321),
            "query_string": b"",
        }
    )


def test_losing_the_role_at_the_provider_ends_api_tokens_too(pg_app: Settings) -> None:
    reset_settings(
        pg_app.model_copy(
            update={
                "oidc_issuer": ISSUER,
                "oidc_client_id": "console",
                "oidc_role_map": {"nl-ops": "ops"},
            }
        )
    )
    user = account_for(
        _request(),
        {"sub": "u-1", "email": "ann@corp.example", "email_verified": True, "roles": ["nl-ops"]},
        ISSUER,
    )
    assert isinstance(user, User) and user.role == "ops"
    token = create_token(user.username, user.id, "scraper")["token"]
    with TestClient(create_app(), base_url="https://testserver") as c:
        bearer = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/jobs", headers=bearer).status_code == 200
        # The provider takes the group away; the next sign-in is refused...
        refused = account_for(_request(), {"sub": "u-1", "roles": []}, ISSUER)
        assert not isinstance(refused, User)
        # ...and the token made while the user had a role dies with the sessions.
        assert c.get("/api/jobs", headers=bearer).status_code == 401


@contextlib.contextmanager
def _provider(pg_app: Settings, jwks: Any) -> Iterator[str]:
    """A provider made of two files (discovery and ``jwks``, a route of tests/httpserve.py),
    configured as the console's; yields its issuer URL."""
    routes: dict[str, Any] = {"/jwks": jwks}
    with serve_paths(routes) as issuer:
        routes["/.well-known/openid-configuration"] = (
            200,
            {"Content-Type": "application/json"},
            json.dumps(
                {
                    "issuer": issuer,
                    "jwks_uri": f"{issuer}/jwks",
                    "authorization_endpoint": f"{issuer}/auth",
                    "token_endpoint": f"{issuer}/token",
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            ).encode(),
        )
        reset_settings(
            pg_app.model_copy(
                update={
                    "oidc_issuer": issuer,
                    "oidc_client_id": "console",
                    "oidc_role_map": {"nl-ops": "ops"},
                    "oidc_allow_private": True,  # the test provider listens on loopback
                }
            )
        )
        yield issuer


def _signed(key: Any, claims: dict[str, Any]) -> str:
    from joserfc import jwt

    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "logout+jwt"}, claims, key)


def _logout_claims(issuer: str, sub: str) -> dict[str, Any]:
    return {
        "iss": issuer,
        "aud": "console",
        "iat": int(clock.timestamp()),
        "jti": uuid.uuid4().hex,
        "sub": sub,
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    }


def test_outsiders_logout_tokens_do_not_make_us_fetch_the_keys_each_time(
    pg_app: Settings,
) -> None:
    from joserfc.jwk import KeySet, RSAKey

    old, new = RSAKey.generate_key(2048, {"kid": "k1"}), RSAKey.generate_key(2048, {"kid": "k2"})
    published = [old]
    fetched: list[str] = []

    def jwks() -> tuple[int, dict[str, str], bytes]:
        fetched.append("jwks")
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps(KeySet(published).as_dict(private=False)).encode(),
        )

    with _provider(pg_app, jwks) as issuer:
        user = account_for(_request(), {"sub": "u-2", "roles": ["nl-ops"]}, issuer)
        assert isinstance(user, User)
        stranger = RSAKey.generate_key(2048, {"kid": "k1"})  # a key id we know, not our key
        with TestClient(create_app(), base_url="https://testserver") as c:
            url = "/console/sso/backchannel-logout"
            for n in range(30):
                junk = (
                    ("x" * n + ".y.z")
                    if n % 3
                    else _signed(stranger, _logout_claims(issuer, "u-2"))
                )
                assert c.post(url, data={"logout_token": junk}).status_code == 400
            assert len(fetched) <= 2, fetched
            # The provider rolls its key over: a token signed with the new key still works.
            published.append(new)
            r = c.post(url, data={"logout_token": _signed(new, _logout_claims(issuer, "u-2"))})
            assert r.status_code == 200, r.text
    with session_scope() as s:
        again = s.get(User, user.id)
        assert again is not None and again.session_version == user.session_version + 1


def test_local_accounts_off_ends_their_tokens_and_only_an_admin_may_switch(
    pg_app: Settings,
    as_role: Any,
) -> None:
    from newsletter.web.console.switches import local_login_enabled

    reset_settings(
        pg_app.model_copy(
            update={
                "oidc_issuer": ISSUER,
                "oidc_client_id": "console",
                "oidc_role_map": {"nl-admins": "admin"},
            }
        )
    )
    with session_scope() as s:
        ops_id = s.scalars(select(User.id).where(User.username == "ops")).one()
    token = create_token("ops", ops_id, "local")["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    ops, marketing, admin = as_role("ops"), as_role("marketing"), as_role("admin")
    # not an admin, or no CSRF token: the switch does not move
    for who in (ops, marketing):
        r = who.post("/console/sso/local-login", data={"on": "off"})
        assert r.status_code == 403
    assert admin.client.post("/console/sso/local-login", data={"on": "off"}).status_code == 403
    # an admin, but nobody has signed in as an admin by SSO yet: refused (no lock-out)
    admin.post("/console/sso/local-login", data={"on": "off"})
    with session_scope() as s:
        assert local_login_enabled(s)
    assert ops.client.get("/api/jobs", headers=bearer).status_code == 200
    boss = account_for(_request(), {"sub": "boss", "roles": ["nl-admins"]}, ISSUER)
    assert isinstance(boss, User) and boss.role == "admin"
    assert admin.post("/console/sso/local-login", data={"on": "off"}).status_code == 303
    with session_scope() as s:
        assert not local_login_enabled(s)
    with TestClient(create_app(), base_url="https://testserver") as c:
        assert c.get("/api/jobs", headers=bearer).status_code == 401
    assert ops.client.get("/console/").status_code == 303  # its session ended too


def test_a_logout_token_works_once(pg_app: Settings) -> None:
    """A captured logout token posted again (say, after the user signed back in) logs
    nobody out; a token without a jti is refused; a fresh token still works."""
    from joserfc.jwk import KeySet, RSAKey

    key = RSAKey.generate_key(2048, {"kid": "k1"})
    keys = (
        200,
        {"Content-Type": "application/json"},
        json.dumps(KeySet([key]).as_dict(private=False)).encode(),
    )
    with _provider(pg_app, keys) as issuer:
        user = account_for(_request(), {"sub": "u-3", "roles": ["nl-ops"]}, issuer)
        assert isinstance(user, User)
        url = "/console/sso/backchannel-logout"
        token = _signed(key, _logout_claims(issuer, "u-3"))
        no_jti = {k: v for k, v in _logout_claims(issuer, "u-3").items() if k != "jti"}
        with TestClient(create_app(), base_url="https://testserver") as c:
            assert c.post(url, data={"logout_token": token}).status_code == 200
            assert c.post(url, data={"logout_token": token}).status_code == 400
            assert c.post(url, data={"logout_token": _signed(key, no_jti)}).status_code == 400
            with session_scope() as s:
                once = s.get(User, user.id)
                assert once is not None and once.session_version == user.session_version + 1
            fresh = _signed(key, _logout_claims(issuer, "u-3"))
            assert c.post(url, data={"logout_token": fresh}).status_code == 200
    with session_scope() as s:
        again = s.get(User, user.id)
        assert again is not None and again.session_version == user.session_version + 2
