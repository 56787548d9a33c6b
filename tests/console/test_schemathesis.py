"""schemathesis against the JSON API's OpenAPI document: no server errors.

Runs in process (ASGI) on a fresh SQLite database with an admin API token, so
every operation is exercised past authentication.  Unsafe methods run too:
the point is that no generated input makes the server fail.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import select

from newsletter.models.console import User
from newsletter.web.app import create_app
from newsletter.web.console.services import create_token


@pytest.fixture
def admin_token(users: dict[str, str]) -> str:
    from newsletter.core.db import session_scope

    with session_scope() as s:
        uid = s.scalar(select(User.id).where(User.role == "admin"))
    assert uid is not None
    return str(create_token("tests", uid, "schemathesis")["token"])


def test_api_never_answers_5xx(admin_token: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
    headers = {"Authorization": f"Bearer {admin_token}"}
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 10
    checked = 0
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        run()
        checked += 1
    assert checked == len(operations)
