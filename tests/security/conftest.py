"""The hostile suite: the real web app on PostgreSQL, one user per role.

Every test here plays an attacker (an outsider, a subscriber, a low-privilege
console user) against the in-process ASGI app (httpx through Starlette's
TestClient), a real PostgreSQL database, Redis, the pixel server and a real
SMTP sink.  See docs/security.md for what each test proves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from newsletter.core.config import Settings
from newsletter.web.app import create_app
from newsletter.web.console.services import create_user
from tests.console.helpers import PASSWORDS, login

NAMES = {"admin": "管理员", "ops": "运营小王", "editor": "编辑小周", "marketing": "市场小李"}

ISSUE_HEAD = "---\ntitle: 安全测试周报\nnumber: {n}\npublication: 安全周报\n---\n\n"


def issue_text(body: str, n: int = 7) -> str:
    """A small valid issue whose first item's body is ``body``."""
    return ISSUE_HEAD.format(n=n) + "## 一、政策法规\n\n### 1. 测试条目\n\n" + body + "\n"


@pytest.fixture
def pg_app(pg_settings: Settings) -> Iterator[Settings]:
    """PostgreSQL, migrated and emptied, with an admin, an ops and a marketing user."""
    for role, pw in PASSWORDS.items():
        create_user("test", role, pw, role, display_name=NAMES[role])
    yield pg_settings
    # A send started through the console runs in a background thread (embedded mode):
    # let it end before the next test empties the tables.
    from newsletter.web.console import services

    for t in list(services._runners.values()):
        t.join(60)
    services._runners.clear()


@pytest.fixture
def anon(pg_app: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(), base_url="https://testserver", follow_redirects=False) as c:
        yield c


class Session:
    """A logged-in console user: a client with its cookie and CSRF token."""

    def __init__(self, role: str) -> None:
        self.client = TestClient(
            create_app(), base_url="https://testserver", follow_redirects=False
        )
        self.csrf = login(self.client, role)

    def post(self, path: str, **kw: object) -> object:
        headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
        headers["X-CSRF-Token"] = self.csrf
        return self.client.post(path, headers=headers, **kw)  # type: ignore[arg-type]


@pytest.fixture
def as_role(pg_app: Settings) -> Iterator[object]:
    made: list[Session] = []

    def make(role: str) -> Session:
        s = Session(role)
        made.append(s)
        return s

    yield make
    for s in made:
        s.client.close()
