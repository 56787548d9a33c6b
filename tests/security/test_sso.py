"""Single sign-on against a hostile world, without the browser: what the provider's
answers do to accounts, sessions and API tokens, and what an outsider's logout
tokens can make the console do.

The provider here is a table of files (discovery document and keys) served over
HTTP by ``tests/httpserve.py``: the back-channel endpoint reads nothing else. The
full flow against a certified provider is ``tests/console/test_sso.py``.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from starlette.requests import Request

from newsletter.config import Settings, reset_settings
from newsletter.web.app import create_app
from newsletter.web.auth_models import User
from newsletter.web.console.services.users import create_token
from newsletter.web.console.sso import _account

ISSUER = "https://id.corp.example"


def _request() -> Request:
    return Request({"type": "http", "method": "GET", "path": "/console/sso/callback",
                    "headers": [], "client": ("203.0.113.5", 4321), "query_string": b""})


def test_losing_the_role_at_the_provider_ends_api_tokens_too(pg_app: Settings) -> None:
    reset_settings(pg_app.model_copy(update={
        "oidc_issuer": ISSUER, "oidc_client_id": "console",
        "oidc_role_map": {"nl-ops": "ops"}}))
    user = _account(_request(), {"sub": "u-1", "email": "ann@corp.example",
                                 "email_verified": True, "roles": ["nl-ops"]}, ISSUER)
    assert isinstance(user, User) and user.role == "ops"
    token = create_token(user.username, user.id, "scraper")["token"]
    with TestClient(create_app(), base_url="https://testserver") as c:
        bearer = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/jobs", headers=bearer).status_code == 200
        # The provider takes the group away; the next sign-in is refused...
        refused = _account(_request(), {"sub": "u-1", "roles": []}, ISSUER)
        assert not isinstance(refused, User)
        # ...and the token made while the user had a role dies with the sessions.
        assert c.get("/api/jobs", headers=bearer).status_code == 401
