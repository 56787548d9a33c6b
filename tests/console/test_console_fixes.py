"""The broken things of issue 18: search over all lists, a failed upload that keeps the
text, the console's lint equal to the CLI's, error pages, and lists fresh after an import."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from newsletter.cli.main import app as cli_app
from tests.console.helpers import login

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "issue-sample.md"


def test_search_over_all_lists_is_a_page_not_a_422(client: TestClient) -> None:
    login(client, "ops")
    r = client.get("/console/subscribers", params={"q": "nobody", "list_id": ""})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert 'id="no-results"' in r.text
    r = client.get("/console/subscribers", params={"q": "", "list_id": "abc"})
    assert r.status_code == 200 and "<!doctype html>" in r.text


def test_failed_upload_keeps_the_pasted_text_and_says_why_in_one_line(
    client: TestClient,
) -> None:
    csrf = login(client, "editor")
    source = "---\ntitle: 测试周报\nnumber: 第x期\n---\n" + "正文很长的一段。\n" * 2000
    r = client.post("/console/issues", data={"csrf": csrf, "source": source})
    assert r.status_code == 422
    m = re.search(r'<textarea name="source"[^>]*>(.*?)</textarea>', r.text, re.S)
    assert m and html.unescape(m.group(1)) == source
    err = re.search(r'id="upload-error">(.*?)</div>', r.text, re.S)
    assert err, r.text[:500]
    line = html.unescape(err.group(1))
    assert "\n" not in line and "/tmp" not in line and "/var/" not in line and "uploads" not in line
    assert re.search(r"[\u4e00-\u9fff]", line) and re.search(r"[A-Za-z]{4,}", line)


def test_failed_import_keeps_the_pasted_text(client: TestClient) -> None:
    csrf = login(client, "editor")
    r = client.post("/console/import", data={"csrf": csrf, "text": "   ", "hints": "{bad"})
    assert r.status_code == 422
    assert 'id="import-error"' in r.text
    assert "Traceback" not in r.text


def test_console_lint_shows_what_the_cli_shows(client: TestClient) -> None:
    csrf = login(client, "editor")
    images = [
        ("images", (p.name, p.read_bytes(), "image/png"))
        for p in sorted((ROOT / "examples" / "images").glob("*.png"))
    ]
    r = client.post(
        "/console/issues",
        data={"csrf": csrf},
        files=[("file", (SAMPLE.name, SAMPLE.read_bytes(), "text/markdown")), *images],
    )
    assert r.status_code == 303, r.text[:300]
    issue_id = int(r.headers["location"].rsplit("/", 1)[1])
    console = client.get(f"/api/issues/{issue_id}/lint").json()
    out = CliRunner().invoke(cli_app, ["issue", "lint", str(SAMPLE), "--json"])
    cli = json.loads(out.stdout)
    codes = sorted(m["code"] for m in console["messages"])
    assert codes == sorted(m["code"] for m in cli["messages"])
    assert any(c.startswith("css-support:") for c in codes)
    page = client.get(f"/console/issues/{issue_id}").text
    assert page.count("css-support:") == sum(c.startswith("css-support:") for c in codes)


def test_console_errors_are_pages_and_api_errors_stay_json(client: TestClient) -> None:
    r = client.get("/console/no-such-page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in r.text and "<title>未找到" in r.text
    assert "/console/" in r.text  # a way back
    login(client, "marketing")
    r = client.get("/console/settings")
    assert r.status_code == 403 and "<title>没有权限" in r.text
    client.get("/console/lang", params={"to": "en"})
    r = client.get("/console/settings")
    assert '<html lang="en">' in r.text and "<title>Not allowed" in r.text
    r = client.get("/console/sends/abc")
    assert r.status_code == 400 and "<title>Invalid request" in r.text
    r = client.get("/api/sends/abc")
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")
    r = client.get("/api/settings")
    assert r.status_code == 403 and "detail" in r.json()
