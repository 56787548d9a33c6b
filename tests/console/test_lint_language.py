"""Lint and size figures in the reader's language: Chinese (or Traditional) on a Chinese
console, English on an English one, the numbers and names in both; the same in the
editor's live lint."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from newsletter.core.config import Settings
from tests.console.helpers import login
from tests.console.seed import seed
from tests.console.test_editor import _source


def test_issue_page_and_editor_lint_follow_the_console_language(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    issue_id = seed(tmp_path, send=False)["issue"]["id"]
    csrf = login(client, "editor")
    text = _source(issue_id) + "\n## 九、空栏目\n"  # an empty section: a lint warning

    def live() -> list[str]:
        r = client.post(
            f"/console/editor/{issue_id}/preview",
            json={"source": text},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 200, r.text[:300]
        out = r.json()["lint"]
        return [m["message"] for m in out["messages"] + out["budgets"]]

    zh = live()
    assert any("是空的" in m and "空栏目" in m for m in zh), zh
    assert not any(" is empty" in m or "bytes" in m for m in zh), zh
    page = client.get(f"/console/issues/{issue_id}").text
    assert "字节" in page and "worst-case" not in page
    client.cookies.set("nl_lang", "zh-Hant")
    hant = live()
    assert any("章節" in m and "是空的" in m for m in hant), hant  # Traditional characters
    assert not any(" is empty" in m for m in hant)
    client.cookies.set("nl_lang", "en")
    en = live()
    assert any("is empty" in m and "空栏目" in m for m in en), en  # the title is data
    assert not any("是空的" in m or "字节" in m for m in en), en
    assert "worst-case" in client.get(f"/console/issues/{issue_id}").text


def test_preview_links_are_out_of_the_tab_order(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    issue_id = seed(tmp_path, send=False)["issue"]["id"]
    csrf = login(client, "editor")
    frame = client.get(f"/console/issues/{issue_id}/frame/email_html").text
    assert "<a " in frame and "<a href" not in frame and '<a tabindex="-1"' in frame
    page = client.get(f"/console/issues/{issue_id}").text
    assert 'id="preview-panel" aria-labelledby="tab-1" tabindex="0"' in page
    r = client.post(
        f"/console/editor/{issue_id}/preview",
        json={"source": _source(issue_id)},
        headers={"X-CSRF-Token": csrf},
    )
    html = r.json()["outputs"]["email_html"]
    assert "<a href" not in html and '<a tabindex="-1"' in html


def test_a_lint_line_links_to_its_line_in_the_editor(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    from newsletter.core.db import session_scope
    from newsletter.models import Issue

    issue_id = seed(tmp_path, send=False)["issue"]["id"]
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None
        issue.source_text += "\n## 九、空栏目\n"
        issue.status = "draft"
        line = issue.source_text.rstrip("\n").count("\n") + 1
    login(client, "editor")
    page = client.get(f"/console/issues/{issue_id}").text
    assert f'href="/console/editor/{issue_id}#L{line}"' in page
    client.cookies.clear()
    login(client, "marketing")  # cannot edit: the line number stays plain text
    assert f"#L{line}" not in client.get(f"/console/issues/{issue_id}").text
