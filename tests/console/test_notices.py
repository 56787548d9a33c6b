"""Review notices in the console: the approvers see "waits for your review" on the
overview, the author sees "approved"; each person marks only their own as read. A person
sets their display name and the address notices are mailed to."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.core.db import session_scope
from newsletter.models import AuditLog, ReviewNotice, User
from tests.conftest import EXAMPLES
from tests.console.helpers import client_as, login
from tests.console.test_review_both_ways import _upload


def _unread(who: str) -> int:
    with session_scope() as s:
        return len(
            s.scalars(
                select(ReviewNotice.id).where(
                    ReviewNotice.recipient == who, ReviewNotice.read_at.is_(None)
                )
            ).all()
        )


def test_approvers_and_author_see_their_notices(client: TestClient) -> None:
    issue_id = _upload((EXAMPLES / "issue-sample.md").read_bytes())  # by ops
    csrf = login(client, "ops")
    assert client.post(f"/console/issues/{issue_id}/review", data={"csrf": csrf}).status_code == 303
    assert _unread("ops") == 0  # the author is not told of their own step
    editor, ecsrf = client_as("editor")
    home = html.unescape(editor.get("/console/").text)
    assert 'id="notices"' in home and "等待你审核" in home and "运营小王" in home  # by name
    # marketing cannot approve: told nothing
    marketing, _ = client_as("marketing")
    assert 'id="notices"' not in marketing.get("/console/").text
    # approve as the editor: the author (ops) is told, by the editor's display name
    r = editor.post(f"/console/issues/{issue_id}/approve", data={"csrf": ecsrf})
    assert r.status_code == 303
    mine = html.unescape(client.get("/console/").text)
    assert "已审核通过" in mine and "编辑小周" in mine
    # marking read is per person, and needs the form's token
    assert client.post("/console/notices/read", data={"csrf": "wrong"}).status_code == 403
    assert _unread("ops") == 1
    assert client.post("/console/notices/read", data={"csrf": csrf}).status_code == 303
    assert _unread("ops") == 0 and _unread("editor") == 1
    assert 'id="notices"' not in client.get("/console/").text


def test_profile_sets_name_and_notice_address(client: TestClient) -> None:
    csrf = login(client, "editor")
    page = client.get("/console/account").text
    assert 'id="profile"' in page and "通知邮箱" in page
    r = client.post(
        "/console/account/profile",
        data={"csrf": csrf, "display_name": "  周  编辑 ", "email": "Zhou@Example.org"},
    )
    assert r.status_code == 303
    with session_scope() as s:
        u = s.scalar(select(User).where(User.username == "editor"))
        assert u is not None and u.display_name == "周 编辑" and u.email == "zhou@example.org"
        assert s.scalar(select(AuditLog.action).order_by(AuditLog.id.desc())) == "user.profile"
    # the session stays valid: the page still loads
    assert client.get("/console/account").status_code == 200
    # a header injection or a non-address is refused with a reason, nothing stored
    r = client.post(
        "/console/account/profile",
        data={"csrf": csrf, "display_name": "x", "email": "a@example.org\r\nBcc: b@example.org"},
    )
    flash = client.get(r.headers["location"]).text
    assert "邮箱" in flash
    with session_scope() as s:
        u = s.scalar(select(User).where(User.username == "editor"))
        assert u is not None and u.email == "zhou@example.org" and u.display_name == "周 编辑"


def test_people_appear_by_display_name(client: TestClient) -> None:
    issue_id = _upload((EXAMPLES / "issue-sample.md").read_bytes())  # by ops
    editor, ecsrf = client_as("editor")
    assert (
        editor.post(f"/console/issues/{issue_id}/approve", data={"csrf": ecsrf}).status_code == 303
    )
    login(client, "admin")
    page = html.unescape(client.get(f"/console/issues/{issue_id}").text)
    assert "审核人: 编辑小周" in page and "封存人: 编辑小周" in page
    assert "<td>编辑小周</td>" in client.get("/console/issues").text
    audit = client.get("/console/audit").text
    assert re.search(r"<td>编辑小周</td><td>审核通过", audit), audit[-3000:]
