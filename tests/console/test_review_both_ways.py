"""Review both ways: request changes with a note, the author sees it, a new version, a diff,
then approval; nobody is offered a button that four-eyes would refuse."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from newsletter.web.console import services as svc
from tests.conftest import EXAMPLES
from tests.console.helpers import login
from tests.console.seed import principal


def _upload(source: bytes) -> int:
    images = [(p.name, p.read_bytes()) for p in sorted((EXAMPLES / "images").glob("*.png"))]
    return int(svc.upload_issue(principal("ops"), "issue-sample.md", source, images)["id"])


def test_request_changes_then_a_new_version_a_diff_and_approval(client: TestClient) -> None:
    source = (EXAMPLES / "issue-sample.md").read_bytes()
    issue_id = _upload(source)
    csrf = login(client, "ops")  # the author
    r = client.post(f"/console/issues/{issue_id}/review", data={"csrf": csrf})
    assert r.status_code == 303
    page = client.get(f"/console/issues/{issue_id}").text
    assert 'id="request-changes"' not in page  # an author does not review their own issue

    client.cookies.clear()
    csrf = login(client, "editor")
    home = html.unescape(client.get("/console/").text)
    assert re.search(r'id="review-queue".*等待你审核', home, re.S)
    note = "第一条的标题太长，请缩短"
    r = client.post(
        f"/console/issues/{issue_id}/request-changes", data={"csrf": csrf, "note": note}
    )
    assert r.status_code == 303
    assert svc.load_issue_row(issue_id)["status"] == "draft"

    client.cookies.clear()
    login(client, "ops")
    home = html.unescape(client.get("/console/").text)
    assert "退回修改" in home and note in home
    changed = source.replace(b"number: 47", b"number: 47", 1).replace(
        "营商环境".encode(), "营商环境（修订）".encode(), 1
    )
    assert changed != source
    assert _upload(changed) == issue_id
    page = html.unescape(client.get(f"/console/issues/{issue_id}").text)
    assert note in page and "v2" in page

    client.cookies.clear()
    csrf = login(client, "editor")
    diff = client.get(f"/console/issues/{issue_id}/diff")
    assert diff.status_code == 200
    text = html.unescape(diff.text)
    assert "v1" in text and "v2" in text and "（修订）" in text
    r = client.post(f"/console/issues/{issue_id}/approve", data={"csrf": csrf})
    assert r.status_code == 303
    assert svc.load_issue_row(issue_id)["status"] == "approved"


def test_a_request_without_a_note_is_refused_in_one_line(client: TestClient) -> None:
    issue_id = _upload((EXAMPLES / "issue-sample.md").read_bytes())
    csrf = login(client, "editor")
    r = client.post(f"/console/issues/{issue_id}/request-changes", data={"csrf": csrf, "note": " "})
    flash = html.unescape(client.get(r.headers["location"]).text)
    assert "请写明需要修改什么" in flash
