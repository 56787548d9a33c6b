"""The errors class over HTTP: the 500s of the report are 4xx with one clear message,
data errors are 422/400 (not 404), and ``send.start`` is audited only when it started."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from newsletter.core.config import Settings, get_settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.models import AuditLog, Issue, Send
from tests.factories import seed
from tests.security.conftest import issue_text


def test_missing_segment_or_issue_in_a_new_send_is_422(as_role, pg_app: Settings) -> None:  # type: ignore[no-untyped-def]
    ids = seed(1)
    ops = as_role("ops")
    body = {"issue_id": ids["issue"], "list_id": ids["list"], "segment_id": 987654}
    r = ops.post("/api/sends", json=body)
    assert r.status_code == 422 and "segment" in r.json()["detail"]
    r = ops.post("/api/sends", json={**body, "segment_id": None, "issue_id": 987654})
    assert r.status_code == 422 and "issue" in r.json()["detail"]
    r = ops.post("/api/sends", json={**body, "segment_id": None, "list_id": 987654})
    assert r.status_code == 422


def test_huge_in_list_and_deep_segments_are_422(as_role, pg_app: Settings) -> None:  # type: ignore[no-untyped-def]
    mkt = as_role("ops")
    values = [str(i) for i in range(65536)]
    r = mkt.post(
        "/api/segments/count", json={"definition": {"attr": "city", "op": "in", "value": values}}
    )
    assert r.status_code == 422 and "1000" in r.json()["detail"]
    deep: dict = {"attr": "city", "op": "eq", "value": "x"}
    for _ in range(200):
        deep = {"not": deep}
    r = mkt.post("/api/segments/count", json={"definition": deep})
    assert r.status_code == 422 and "deep" in r.json()["detail"]


def test_ten_thousand_deep_json_is_a_client_error(as_role, pg_app: Settings) -> None:  # type: ignore[no-untyped-def]
    mkt = as_role("ops")
    body = '{"definition": ' + "[" * 10000 + "]" * 10000 + "}"
    r = mkt.post(
        "/api/segments/count", content=body.encode(), headers={"content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500


def test_bad_front_matter_date_is_422_with_its_line(as_role, pg_app: Settings) -> None:  # type: ignore[no-untyped-def]
    ops = as_role("ops")
    text = issue_text("正文").replace("number: 7", "number: 7\ndate: 2026-02-30")
    r = ops.post("/api/issues", files={"file": ("issue.md", text.encode(), "text/markdown")})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert (":4:" in detail and "date" in detail.lower()) or "日期" in detail
    assert "/" + "work" not in detail  # no server path


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/x%00",
        "/console/static/%00",
        "/console/static/..%2f..%2fetc%2fpasswd",
        "/console/static/x%00.css",
    ],
)
def test_static_with_nul_or_traversal_is_404(anon: TestClient, path: str) -> None:
    assert anon.get(path).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/issues/99999999999999999999",
        "/api/sends/9223372036854775808",
        "/api/issues/2147483648/lint",
    ],
)
def test_ids_too_large_for_their_column_are_client_errors(as_role, path: str) -> None:  # type: ignore[no-untyped-def]
    r = as_role("marketing").client.get(path)
    assert 400 <= r.status_code < 500 and r.status_code != 500


@pytest.fixture
def broker_down(pg_app: Settings) -> Iterator[Settings]:
    import workers.celery_app as ca

    down = pg_app.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    reset_settings(down)
    ca.configure(ca.app, down)
    ca.app.conf.broker_transport_options = {"max_retries": 0}
    ca.app.conf.task_publish_retry = False
    try:
        yield down
    finally:
        reset_settings(pg_app)
        ca.configure(ca.app, pg_app)


def test_send_start_is_audited_only_when_it_started(as_role, broker_down: Settings) -> None:  # type: ignore[no-untyped-def]
    assert not get_settings().embedded
    ids = seed(1)
    ops = as_role("ops")
    r = ops.post(f"/api/sends/{ids['send']}/start")
    assert r.status_code == 503, r.text
    assert "broker" in r.json()["detail"]
    with session_scope() as s:
        n = s.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "send.start")
        )
        state = s.scalar(select(Send.state).where(Send.id == ids["send"]))
    assert n == 0 and state == "draft"


def test_send_start_is_audited_when_it_started(as_role, pg_app: Settings) -> None:  # type: ignore[no-untyped-def]
    ids = seed(1)
    with session_scope() as s:
        s.execute(update(Issue).where(Issue.id == ids["issue"]).values(status="approved"))
    ops = as_role("ops")
    r = ops.post(f"/api/sends/{ids['send']}/start")
    assert r.status_code == 200, r.text
    with session_scope() as s:
        rows = s.scalars(select(AuditLog.detail).where(AuditLog.action == "send.start")).all()
    assert len(rows) == 1
    assert json.dumps(rows[0]) is not None
