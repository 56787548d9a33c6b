"""The source editor: live preview of every channel and variant, lint as one types
(the CLI's messages), saving as a new version; roles, CSRF and hostile sources."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from newsletter.cli.main import app as cli_app
from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.devtools.sink import SinkHandler
from newsletter.models import AuditLog, Issue
from tests.console.helpers import PASSWORDS, client_as, login
from tests.console.seed import seed

ROOT = Path(__file__).resolve().parents[2]


def _source(issue_id: int) -> str:
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None
        return issue.source_text


def test_preview_and_lint_follow_the_text(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    data = seed(tmp_path, send=False)
    issue_id = data["issue"]["id"]
    csrf = login(client, "editor")
    page = client.get(f"/console/editor/{issue_id}")
    assert page.status_code == 200 and "营商环境与数字经济政策周报" in page.text
    assert 'id="source"' in page.text and "/console/static/editor.js" in page.text
    text = _source(issue_id).replace("本周政策发布节奏明显加快", "本周政策发布节奏显著加快", 1)
    r = client.post(
        f"/console/editor/{issue_id}/preview", json={"source": text}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200, r.text[:300]
    out = r.json()
    assert {"email_html", "email_text", "web", "wechat-1"} <= set(out["order"])
    for name in ("email_html", "email_text", "web", "wechat-1"):
        assert "本周政策发布节奏显著加快" in out["outputs"][name], name
    assert "%%" not in out["outputs"]["email_html"]  # slots filled with sample values
    hant = client.post(
        f"/console/editor/{issue_id}/preview",
        json={"source": text, "variant": "zh-Hant"},
        headers={"X-CSRF-Token": csrf},
    ).json()
    assert "本週政策發布節奏顯著加快" in hant["outputs"]["web"]
    # the publication's own words are Traditional too (the footer signed in Simplified)
    assert "營商環境與數字經濟政策週報" in hant["outputs"]["web"]
    assert "营商环境" not in hant["outputs"]["web"]

    # a broken link and a missing meta line: the same messages as `newsletter issue lint`
    broken = text.replace(
        "原文链接：https://www.gov.cn/zhengce/content/202611/content_7012345.htm",
        "原文链接：javascript:alert(1)",
        1,
    )
    assert broken != text
    live = client.post(
        f"/console/editor/{issue_id}/preview",
        json={"source": broken},
        headers={"X-CSRF-Token": csrf},
    ).json()["lint"]
    src = tmp_path / "issue.md"
    src.write_text(broken, encoding="utf-8")
    (tmp_path / "images").mkdir(exist_ok=True)
    for png in (ROOT / "examples" / "images").glob("*.png"):
        (tmp_path / "images" / png.name).write_bytes(png.read_bytes())
    cli = CliRunner().invoke(cli_app, ["issue", "lint", str(src), "--json"])
    cli_msgs = json.loads(cli.stdout)["messages"]
    assert live["errors"] >= 1

    # Content messages are the CLI's word for word (sizes differ by the publication's
    # footer, which the CLI does not know: it lints a file, not a stored issue).
    def content(msgs: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
        return [
            (m["code"], m["line"], m["message"])
            for m in msgs
            if not m["code"].endswith(("-size", "-budget")) and m["code"] != "email-digest"
        ]

    assert any(c == "meta-url" for c, _l, _m in content(live["messages"]))
    # (the console shows the reader's half of the CLI's bilingual line)
    from newsletter.web.console.pages.common import said

    cli_zh = [{**m, "message": said(m["message"], "zh")} for m in cli_msgs]
    assert content(live["messages"]) == content(cli_zh)

    # unparseable text: one line, no traceback
    bad = client.post(
        f"/console/editor/{issue_id}/preview",
        json={"source": "---\nnumber: [\n---"},
        headers={"X-CSRF-Token": csrf},
    )
    assert bad.status_code == 200
    assert bad.json()["errors"] and "Traceback" not in bad.text


def test_saving_makes_a_new_version_and_keeps_what_was_typed_on_error(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    data = seed(tmp_path, send=False)
    issue_id = data["issue"]["id"]
    with session_scope() as s:
        before = s.get(Issue, issue_id)
        assert before is not None and before.status == "approved"  # seed approves it
    csrf = login(client, "editor")
    text = _source(issue_id).replace("本周政策发布节奏明显加快", "本周政策发布节奏持续加快", 1)
    r = client.post(f"/console/editor/{issue_id}", data={"csrf": csrf, "source": text})
    assert r.status_code == 303 and r.headers["location"] == f"/console/issues/{issue_id}"
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None and "节奏持续加快" in issue.source_text
        assert issue.status == "in_review"  # it was approved: an edit sends it back to review
        assert issue.updated_by == "editor"
        uploads = s.scalars(select(AuditLog.action).where(AuditLog.target == f"issue:{issue_id}"))
        assert "issue.upload" in list(uploads)
    page = client.get(f"/console/issues/{issue_id}")
    assert "节奏持续加快" in client.get(f"/console/issues/{issue_id}/frame/web").text
    assert page.status_code == 200

    # a path outside the issue folder: refused, the text kept, no server path shown
    hostile = text.replace("## 一、政策法规", "![x](../../../../etc/passwd)\n\n## 一、政策法规", 1)
    r = client.post(f"/console/editor/{issue_id}", data={"csrf": csrf, "source": hostile})
    assert r.status_code == 422
    assert "../../../../etc/passwd" in r.text  # kept in the text area
    err = re.search(r'class="flash error"[^>]*>(.*?)</div>', r.text, re.S)
    assert err and "/tmp" not in err.group(1) and "Traceback" not in r.text
    assert "节奏持续加快" in _source(issue_id) and "etc/passwd" not in _source(issue_id)


def test_roles_and_csrf(client: TestClient, console_settings: Settings, tmp_path: Path) -> None:
    data = seed(tmp_path, send=False)
    issue_id = data["issue"]["id"]
    m, mcsrf = client_as("marketing")
    assert m.get(f"/console/editor/{issue_id}").status_code == 403
    assert (
        m.post(
            f"/console/editor/{issue_id}/preview",
            json={"source": "x"},
            headers={"X-CSRF-Token": mcsrf},
        ).status_code
        == 403
    )
    login(client, "editor")
    r = client.post(f"/console/editor/{issue_id}/preview", json={"source": "x"})
    assert r.status_code == 403  # no CSRF token
    assert client.get("/console/editor/999999").status_code == 404


@pytest.mark.e2e
def test_typing_updates_the_preview_in_the_browser(
    server: tuple[str, Settings, SinkHandler], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _s, _sink = server
    data = seed(tmp_path, send=False)
    issue_id = data["issue"]["id"]
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        try:
            page: Any = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(f"{base}/console/login")
            page.fill("input[name=username]", "editor")
            page.fill("input[name=password]", PASSWORDS["editor"])
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/console/")
            # a lint line's link opens the editor with its line selected
            target = 5
            page.goto(f"{base}/console/editor/{issue_id}#L{target}")
            selected = page.evaluate(
                "() => { const s = document.getElementById('source');"
                " return s.value.slice(0, s.selectionStart).split('\\n').length; }"
            )
            assert selected == target, (selected, target)
            page.goto(f"{base}/console/issues/{issue_id}")
            page.click("#edit-source")
            page.wait_for_url(f"{base}/console/editor/{issue_id}")
            expect(page.locator("#editor-status")).to_contain_text("已检查", timeout=20_000)
            area = page.locator("#source")
            area.press("Control+Home")
            area.type("")
            value = area.input_value().replace(
                "本周政策发布节奏明显加快", "本周政策发布节奏正在加快", 1
            )
            area.fill(value)
            area.dispatch_event("input")
            frame = page.frame_locator("#editor-preview")
            expect(frame.locator("body")).to_contain_text("节奏正在加快", timeout=20_000)
            page.click("[data-variant=zh-Hant]")
            expect(frame.locator("body")).to_contain_text("節奏正在加快", timeout=20_000)
            page.locator("#editor-tabs [role=tab]", has_text="网页").click()
            expect(frame.locator("body")).to_contain_text("節奏正在加快", timeout=10_000)
            page.set_viewport_size({"width": 375, "height": 800})
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= 375, wide
            # on a phone the navigation folds into a menu
            toggle = page.locator("button.nav-toggle")
            expect(toggle).to_be_visible()
            expect(page.locator("#main-nav")).to_be_hidden()
            toggle.click()
            expect(toggle).to_have_attribute("aria-expanded", "true")
            expect(page.locator("#main-nav a", has_text="发送")).to_be_visible()
            page.keyboard.press("Escape")
            expect(page.locator("#main-nav")).to_be_hidden()
            page.set_viewport_size({"width": 1366, "height": 800})
            expect(toggle).to_be_hidden()
            expect(page.locator("#main-nav")).to_be_visible()
        finally:
            browser.close()


def test_a_symlink_in_the_issue_folder_is_not_carried_and_final_issues_stay(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    data = seed(tmp_path, send=False)
    issue_id = data["issue"]["id"]
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None and issue.base_dir
        folder = Path(issue.base_dir)
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes((ROOT / "examples" / "images" / "cover.png").read_bytes() + b"SECRET-BYTES")
    (folder / "leak.png").symlink_to(secret)
    csrf = login(client, "editor")
    text = _source(issue_id).replace("## 一、政策法规", "![x](leak.png)\n\n## 一、政策法规", 1)
    client.post(f"/console/editor/{issue_id}", data={"csrf": csrf, "source": text})
    var = console_settings.var_dir
    copies = [
        p
        for p in var.rglob("*")
        if p.is_file() and not p.is_symlink() and b"SECRET-BYTES" in p.read_bytes()
    ]
    assert copies == []
    # a sent issue cannot be changed from the editor
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None
        issue.status = "sent"
        before = issue.source_text
    r = client.post(
        f"/console/editor/{issue_id}",
        data={"csrf": csrf, "source": before.replace("周报", "改过的周报")},
    )
    assert r.status_code == 422
    assert _source(issue_id) == before
