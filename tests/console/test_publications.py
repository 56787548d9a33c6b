"""Publications are created on purpose, each with its own settings, and an issue that went
to the wrong one moves (audited); an import never invents one."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.core.db import session_scope
from newsletter.models import AuditLog, Issue, Publication, Send
from tests.conftest import EXAMPLES
from tests.console.helpers import client_as, login
from tests.console.test_review_both_ways import _upload

runner = CliRunner()


def _flash(c: TestClient, r: object) -> str:
    loc = r.headers["location"]  # type: ignore[attr-defined]
    return html.unescape(c.get(loc).text)


def _pub(slug: str) -> Publication:
    with session_scope() as s:
        p = s.scalar(select(Publication).where(Publication.slug == slug))
        assert p is not None
        s.expunge(p)
        return p


def test_create_and_set_up_a_publication_of_its_own(client: TestClient) -> None:
    _upload((EXAMPLES / "issue-sample.md").read_bytes())  # the first publication
    first = _pub_slugs()[0]
    csrf = login(client, "admin")
    r = client.post(
        "/console/publications", data={"csrf": csrf, "slug": "monthly", "name": "合规月报"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/settings?pub=monthly"
    page = _flash(client, r)
    assert "已创建" in page and "合规月报" in page and 'aria-current="page"' in page
    # refusals: a bad slug, a taken one, no name; each one line in Chinese, nothing made
    for slug, name, said in [("Bad Slug", "x", "代号"), ("monthly", "y", "已被使用"),
                             ("quarterly", " ", "名称"), ("../x", "x", "代号")]:  # fmt: skip
        r = client.post("/console/publications", data={"csrf": csrf, "slug": slug, "name": name})
        assert said in _flash(client, r), slug
    assert _pub_slugs() == [first, "monthly"]
    # its own settings: saving the second does not touch the first
    r = client.post(
        "/console/settings/publication",
        data={"csrf": csrf, "slug": "monthly", "name": "合规月报", "from_name": "合规部",
              "from_address": "compliance@example.org", "postal_address": "上海市"},
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/console/settings?pub=monthly"
    assert _pub("monthly").from_address == "compliance@example.org"
    assert _pub(first).from_address != "compliance@example.org"
    assert client.get("/console/settings?pub=nope").status_code == 404
    # only an admin creates one
    editor, ecsrf = client_as("editor")
    r = editor.post("/console/publications", data={"csrf": ecsrf, "slug": "x1", "name": "x"})
    assert r.status_code == 403
    with session_scope() as s:
        actions = list(s.scalars(select(AuditLog.action)))
    assert actions.count("publication.create") == 1


def _pub_slugs() -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(Publication.slug).order_by(Publication.id)))


def test_move_an_issue_audited_approved_goes_back_to_review(client: TestClient) -> None:
    issue_id = _upload((EXAMPLES / "issue-sample.md").read_bytes())
    first = _pub_slugs()[0]
    csrf = login(client, "admin")
    client.post("/console/publications", data={"csrf": csrf, "slug": "monthly", "name": "合规月报"})
    editor, ecsrf = client_as("editor")
    page = editor.get(f"/console/issues/{issue_id}").text
    assert 'id="move"' in page and 'value="monthly"' in page
    # approved (by someone other than the uploader), then moved: back to review
    assert (
        editor.post(f"/console/issues/{issue_id}/approve", data={"csrf": ecsrf}).status_code == 303
    )
    with session_scope() as s:
        assert s.get(Issue, issue_id).status == "approved"  # type: ignore[union-attr]
    r = editor.post(
        f"/console/issues/{issue_id}/move", data={"csrf": ecsrf, "publication": "monthly"}
    )
    assert "第47期已移到刊物 monthly" in _flash(editor, r)
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None and issue.status == "in_review" and issue.sealed_version is None
        assert issue.publication_id == _pub("monthly").id
        moved = s.scalar(select(AuditLog).where(AuditLog.action == "issue.move"))
        assert moved is not None and moved.actor == "editor"
    # an unknown publication, or a missing issue
    r = editor.post(f"/console/issues/{issue_id}/move", data={"csrf": ecsrf, "publication": "nope"})
    assert "刊物 nope 不存在" in _flash(editor, r)
    assert (
        editor.post(
            "/console/issues/999999/move", data={"csrf": ecsrf, "publication": first}
        ).status_code
        == 404
    )
    # an issue with a send stays where it is
    with session_scope() as s:
        s.add(Send(publication_id=_pub("monthly").id, issue_id=issue_id, channel="email"))
    r = editor.post(f"/console/issues/{issue_id}/move", data={"csrf": ecsrf, "publication": first})
    assert "已有发送记录" in _flash(editor, r)
    with session_scope() as s:
        assert s.get(Issue, issue_id).publication_id == _pub("monthly").id  # type: ignore[union-attr]
    # marketing cannot move
    m, mcsrf = client_as("marketing")
    r = m.post(f"/console/issues/{issue_id}/move", data={"csrf": mcsrf, "publication": first})
    assert r.status_code == 403


def test_cli_creates_moves_and_never_invents(client: TestClient, tmp_path: Path) -> None:
    _upload((EXAMPLES / "issue-sample.md").read_bytes())
    r = runner.invoke(app, ["publications", "create", "monthly", "--name", "合规月报"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["publications", "create", "monthly", "--name", "again"])
    assert r.exit_code == 2 and "已被使用" in r.output
    r = runner.invoke(app, ["issue", "move", "#47", "--to", "monthly", "--json"])
    assert r.exit_code == 0 and '"moved": true' in r.output, r.output
    # a typo in --publication is refused, not a new publication
    r = runner.invoke(
        app, ["issue", "add", str(EXAMPLES / "issue-sample.md"), "--publication", "monthyl"]
    )
    assert r.exit_code == 2 and "刊物 monthyl 不存在" in r.output
    assert _pub_slugs()[1:] == ["monthly"]
    r = runner.invoke(app, ["publications", "list", "--json"])
    assert '"slug": "monthly"' in r.output and '"issues": 1' in r.output
