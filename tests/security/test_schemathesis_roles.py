"""schemathesis over every API operation as each role (and anonymously), on PostgreSQL:
no generated input makes the server fail (0 answers of 500 or more).

PostgreSQL matters here: it refuses values SQLite stores (integers over 32/64 bits,
NUL characters in text), which is where such 500s come from.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import select

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.models.console import User
from newsletter.web.app import create_app
from newsletter.web.console.services import create_token
from tests.factories import seed


@pytest.mark.parametrize("role", ["admin", "ops", "editor", "marketing", None])
def test_every_operation_as_every_role_never_answers_5xx(
    pg_app: Settings, role: str | None
) -> None:
    seed(3)
    headers: dict[str, str] = {}
    if role is not None:
        with session_scope() as s:
            uid = s.scalar(select(User.id).where(User.username == role))
        assert uid is not None
        headers["Authorization"] = f"Bearer {create_token('tests', uid, 'fuzz')['token']}"
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 40
    failures: list[str] = []
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:  # collect every failing operation, then report them all
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures)
