"""Helpers for the console tests: users per role, logging in, CSRF tokens."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from newsletter.web.app import create_app

PASSWORDS = {
    "admin": "harbour-tide-481",
    "ops": "lantern-cove-262",
    "editor": "maple-ridge-519",
    "marketing": "willow-quay-937",
}


def csrf_of(c: TestClient, path: str = "/console/login") -> str:
    html = c.get(path).text
    m = re.search(r'name="csrf-token" content="([0-9a-f]+)"', html)
    assert m, html[:500]
    return m.group(1)


def login(c: TestClient, role: str, password: str | None = None) -> str:
    """Log in as the user named after ``role``; returns the session's CSRF token."""
    token = csrf_of(c)
    r = c.post(
        "/console/login",
        data={
            "username": role,
            "password": password or PASSWORDS[role],
            "csrf": token,
            "next": "/console/",
        },
    )
    assert r.status_code == 303, r.text[:300]
    return csrf_of(c, "/console/")


def client_as(role: str) -> tuple[TestClient, str]:
    c = TestClient(create_app(), base_url="https://testserver", follow_redirects=False)
    return c, login(c, role)
