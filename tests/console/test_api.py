"""The JSON API end to end on SQLite: upload, lint, approve, test-send, import,
segments, send with progress, stats and CSV export, and the audit log."""

from __future__ import annotations

import re
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.devtools.sink import SinkHandler
from newsletter.models import AuditLog
from newsletter.web.app import create_app
from newsletter.web.console.i18n import EN
from tests.console.helpers import login

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def test_api_journey(
    client: TestClient, console_settings: Settings, smtp_sink: tuple[int, SinkHandler]
) -> None:
    reset_settings(
        console_settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_sink[0]})
    )
    csrf = login(client, "ops")
    h = {"X-CSRF-Token": csrf}
    imgs = [("images", (p.name, p.read_bytes(), "image/png"))
            for p in sorted((EXAMPLES / "images").glob("*.png"))]  # fmt: skip
    with (EXAMPLES / "issue-sample.md").open("rb") as f:
        r = client.post("/api/issues",
                        files=[("file", ("issue-sample.md", f, "text/markdown")), *imgs],
                        headers=h)  # fmt: skip
    assert r.status_code == 201, r.text
    issue = r.json()
    assert issue["number"] == 47 and issue["status"] == "draft"
    lint = client.get(f"/api/issues/{issue['id']}/lint").json()
    assert {b["code"] for b in lint["budgets"]} >= {"email-size", "wechat-articles", "web-size"}
    prev = client.get(f"/api/issues/{issue['id']}/preview").json()
    assert "email_html" in prev["outputs"] and prev["wechat"]
    for out in ["email_html", "email_text", "digest", "web", prev["wechat"][0]]:
        r = client.get(f"/console/issues/{issue['id']}/frame/{out}")
        assert r.status_code == 200 and "sandbox" in r.headers["content-security-policy"], out
    # Not approved yet: a send cannot be created.
    r = client.post("/api/sends", json={"issue_id": issue["id"], "list_id": 1}, headers=h)
    assert r.status_code in (409, 422)  # a list id that names nothing is a data error (422)
    r = client.post(f"/api/issues/{issue['id']}/approve", headers=h)
    assert r.status_code == 409 and "four-eyes" in r.text  # ops uploaded it
    with TestClient(create_app(), base_url="https://testserver", follow_redirects=False) as ed:
        ed_csrf = login(ed, "editor")
        r = ed.post(f"/api/issues/{issue['id']}/approve", headers={"X-CSRF-Token": ed_csrf})
        assert r.status_code == 200, r.text
        # an editor writes and approves, but never sends
        r = ed.post("/api/sends", json={"issue_id": issue["id"], "list_id": 1},
                    headers={"X-CSRF-Token": ed_csrf})  # fmt: skip
        assert r.status_code == 403
    r = client.get(f"/api/issues/{issue['id']}")
    assert r.json()["status"] == "approved" and r.json()["approved_by"] == "editor"
    r = client.post(
        f"/api/issues/{issue['id']}/test-send",
        json={"to": ["desk@example.org"], "variant": "both"},
        headers=h,
    )
    assert [x["state"] for x in r.json()] == ["sent", "sent"]

    with (EXAMPLES / "subscribers.csv").open("rb") as f:
        r = client.post(
            "/api/imports",
            files={"file": ("subscribers.csv", f, "text/csv")},
            data={"list_name": "周报订阅"},
            headers=h,
        )
    assert r.status_code == 202, r.text
    job = r.json()
    for _ in range(100):
        job = client.get(f"/api/imports/{job['id']}").json()
        if job["state"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert job["state"] == "done" and job["summary"]["new"] > 30 and job["has_report"]
    report = client.get(f"/api/imports/{job['id']}/errors.csv")
    assert report.status_code == 200 and "row" in report.text
    assert client.get("/api/imports/../../etc").status_code == 404
    lists = client.get("/api/lists").json()
    lid = lists[0]["id"]
    n = client.post(
        "/api/segments/count",
        json={"definition": {"attr": "city", "op": "eq", "value": "北京"}, "list_id": lid},
        headers=h,
    ).json()["count"]
    assert 0 < n < lists[0]["active"]
    r = client.post(
        "/api/segments/count", json={"definition": {"attr": "x'; drop", "op": "eq"}}, headers=h
    )
    assert r.status_code == 422
    export = client.get(f"/api/lists/{lid}/export.csv")
    assert export.status_code == 200 and export.text.startswith("\ufeffemail,")

    # Scheduling and cancelling a send first.
    r = client.post(
        "/api/sends",
        json={
            "issue_id": issue["id"],
            "list_id": lid,
            "mode": "schedule",
            "at": "2099-01-05T09:00:00+08:00",
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "scheduled"
    assert (
        client.post(f"/api/sends/{r.json()['id']}/cancel", headers=h).json()["state"] == "cancelled"
    )

    r = client.post(
        "/api/sends", json={"issue_id": issue["id"], "list_id": lid, "start": True}, headers=h
    )
    assert r.status_code == 201, r.text
    send_id = r.json()["id"]
    for _ in range(200):
        p = client.get(f"/api/sends/{send_id}").json()
        if p["state"] == "finished":
            break
        time.sleep(0.05)
    assert (
        p["percent"] == 100.0 and p["remaining"] == 0 and p["counts"]["sent"] == lists[0]["active"]
    )
    r = client.post(f"/api/sends/{send_id}/cancel", headers=h)
    assert r.status_code == 409
    stats = client.get(f"/api/stats/sends/{send_id}").json()
    assert stats["delivered"] == p["counts"]["sent"]
    csv_ = client.get(f"/api/stats/sends/{send_id}.csv")
    assert csv_.status_code == 200 and "delivered" in csv_.text
    assert client.get("/api/stats/trends").json()[-1]["send_id"] == send_id
    with session_scope() as s:
        rows = s.execute(select(AuditLog.actor, AuditLog.action)).all()
    done = {(a, b) for a, b in rows}
    for action in (
        "send.test",
        "subscribers.import",
        "subscribers.export",
        "send.create",
        "send.start",
        "send.cancel",
        "stats.export",
        "login",
    ):
        assert ("ops", action) in done, action
    assert ("editor", "issue.approve") in done  # four-eyes: not the uploader


def test_every_console_text_has_an_english_translation() -> None:
    keys = set()
    for path in (ROOT / "templates" / "console").glob("*.html"):
        keys |= set(re.findall(r"""_\(["']([^"']+)["']\)""", path.read_text(encoding="utf-8")))
    # Texts the pages' Python code translates, and the words shown for codes.
    from newsletter.web.console import i18n
    from newsletter.web.console.pages import common

    for path in (ROOT / "newsletter" / "web" / "console" / "pages").glob("*.py"):
        keys |= set(re.findall(r"""_\(["']([^"']+)["']\)""", path.read_text(encoding="utf-8")))
    keys |= set(common._ERRORS.values())
    for table in (
        i18n.SEND_STATES,
        i18n.SUB_STATUS,
        i18n.ROLE_NAMES,
        i18n.DELIVERY_STATES,
        i18n.AUDIT_ACTIONS,
        i18n.LINT_CODES,
    ):
        keys |= set(table.values())
    missing = sorted(k for k in keys if k not in EN)
    assert not missing, missing
    assert len(keys) > 250


def test_pages_render_in_both_languages(client: TestClient) -> None:
    login(client, "admin")
    for lang, word in (("zh", "期刊"), ("en", "Issues")):
        client.get("/console/lang", params={"to": lang})
        for path in (
            "/console/",
            "/console/issues",
            "/console/sends",
            "/console/subscribers",
            "/console/stats",
            "/console/settings",
            "/console/account",
            "/console/audit",
        ):
            r = client.get(path)
            assert r.status_code == 200, (path, r.text[:300])
            assert word in r.text
