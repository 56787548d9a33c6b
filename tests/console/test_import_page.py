"""The console's import page: outline, reclassify and re-run, save as a draft."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from tests.console.helpers import login

REAL = Path(__file__).parents[1] / "content" / "fixtures" / "real-brief-2021-08-02.txt"
BRIEF = "標題：測試周報\n期數：第3期\n一、政策\n1、第一條\n正文一\n重點提示\n正文二\n"


def _hidden(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert m, name
    return html.unescape(m.group(1))


def test_outline_of_the_real_brief(client: TestClient) -> None:
    csrf = login(client, "ops")
    assert client.get("/console/import").status_code == 200
    r = client.post("/console/import", data={"csrf": csrf, "text": REAL.read_text("utf-8")})
    assert r.status_code == 200, r.text[:300]
    classes = json.loads(_hidden(r.text, "classes"))
    assert classes["1"] == "chrome" and classes["12"] == "contents" and classes["72"] == "item"
    assert re.search(r'name="c72"[^>]*>(?:(?!</select>).)*<option selected>item</option>', r.text)
    assert "title: 國資國企改革新規與簡析周報" in html.unescape(r.text)


def test_reclassify_rerun_and_save(client: TestClient) -> None:
    csrf = login(client, "ops")
    r = client.post("/console/import", data={"csrf": csrf, "text": BRIEF})
    assert r.status_code == 200
    classes = _hidden(r.text, "classes")
    assert json.loads(classes)["6"] == "body"
    form = {
        "csrf": csrf,
        "text": BRIEF,
        "classes": classes,
        "hints": "{}",
        "number": "",
        "c5": "body",
        "c6": "item",
    }
    r = client.post("/console/import", data=form)
    assert r.status_code == 200
    page = html.unescape(r.text)
    assert "### 2. 重點提示" in page and "import_hints:" in page
    assert json.loads(_hidden(r.text, "hints")) == {"6": "item"}
    markdown = re.search(r'<textarea name="markdown"[^>]*>(.*?)</textarea>', r.text, re.S)
    assert markdown
    r = client.post(
        "/console/import/save", data={"csrf": csrf, "markdown": html.unescape(markdown.group(1))}
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/console/issues/")
    assert "第3期" in client.get(r.headers["location"]).text
