"""The remaining classes of the shared checklist, on PostgreSQL: authorisation (role ×
route from the app's own route table), HTML/script injection in every console field,
secrets never echoed, cookie flags."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.models import MailingList, Publication, Segment, Subscriber, Subscription
from tests.console.test_security import RANK, ROUTES, _url
from tests.factories import seed

XSS = '"><svg onload=alert(1)><script>alert(2)</script><img src=x onerror=alert(3)>'
_LIVE = re.compile(r"<(script|svg|img)\b[^>]*(onload|onerror|>alert)", re.I)


@pytest.mark.parametrize("who", ["marketing", "editor", "ops"])
def test_lower_roles_get_403_on_every_higher_route(as_role, who: str) -> None:  # type: ignore[no-untyped-def]
    seed(2)
    sess = as_role(who)
    checked = 0
    for method, path, role in ROUTES:
        if role is None or (method == "POST" and path == "/console/logout"):
            continue
        r = sess.client.request(method, _url(path), headers={"X-CSRF-Token": sess.csrf})
        if RANK[role] > RANK[who]:
            assert r.status_code == 403, (who, method, path, r.status_code)
            checked += 1
        assert r.status_code < 500, (who, method, path, r.status_code, r.text[:200])
    assert checked > 10


def test_anonymous_gets_nothing_from_the_console_or_api(anon: TestClient) -> None:
    for method, path, role in ROUTES:
        if role is None:
            continue
        r = anon.request(method, _url(path))
        assert r.status_code in (401, 303), (method, path, r.status_code)


def test_script_in_every_console_field_stays_text(as_role, pg_app: Settings) -> None:  # type: ignore[no-untyped-def]
    """A hostile value in each stored field (subscriber name and attributes, list name,
    segment name, publication name and sender, user display name) is shown escaped on
    every console page that lists it."""
    ids = seed(2)
    with session_scope() as s:
        sub = s.scalars(select(Subscriber)).first()
        assert sub is not None
        sub.name = XSS
        sub.attributes = {"city": XSS}
        ml = s.get(MailingList, ids["list"])
        assert ml is not None
        ml.name = XSS[:150]
        s.add(
            Segment(name="seg" + XSS[:100], definition={"attr": "city", "op": "eq", "value": XSS})
        )
        pub = s.get(Publication, ids["publication"])
        assert pub is not None
        pub.name, pub.from_name = XSS[:150], XSS[:150]
        if s.get(Subscription, (sub.id, ids["list"])) is None:
            s.add(Subscription(subscriber_id=sub.id, list_id=ids["list"], status="active"))
    admin = as_role("admin")
    pages = [
        "/console/",
        "/console/subscribers",
        "/console/settings",
        "/console/sends",
        f"/console/sends/{ids['send']}",
        "/console/issues",
        "/console/audit",
        "/console/stats",
        f"/console/subscribers?q={XSS}",
    ]
    for page in pages:
        r = admin.client.get(page)
        assert r.status_code < 500, page
        assert not _LIVE.search(r.text), page
    r = admin.client.get("/api/subscribers")
    assert r.headers["content-type"].startswith("application/json")


def test_secret_key_is_never_echoed(as_role, anon: TestClient, pg_app: Settings) -> None:  # type: ignore[no-untyped-def]
    seed(1)
    key = pg_app.secret_key.get_secret_value()
    admin = as_role("admin")
    for c, path in [
        (anon, "/archive/weekly/47"),
        (anon, "/console/login"),
        (anon, "/api/me"),
        (anon, "/u/forged"),
        (anon, "/media/" + "0" * 64),
        (admin.client, "/api/settings"),
        (admin.client, "/console/settings"),
        (admin.client, "/openapi.json"),
        (admin.client, "/api/audit"),
    ]:
        r = c.get(path)
        assert key not in r.text, path
        assert "/work/" not in r.text and "Traceback" not in r.text, path


def test_cookie_flags(as_role) -> None:  # type: ignore[no-untyped-def]
    from tests.console.helpers import PASSWORDS, csrf_of

    with TestClient(
        as_role("ops").client.app, base_url="https://testserver", follow_redirects=False
    ) as c:
        r = c.post(
            "/console/login",
            data={"username": "ops", "password": PASSWORDS["ops"], "csrf": csrf_of(c)},
        )
        cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
