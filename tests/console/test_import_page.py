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
    assert re.search(
        r'name="c72"[^>]*>(?:(?!</select>).)*<option value="item" selected>条目</option>', r.text
    )
    # each control is named by its line and text, and the rule that decided is shown
    assert re.search(r'aria-label="分类 · 行 72 · [^"]+"', r.text)
    assert "行首标记“1、”重复出现（第二层）" in r.text
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


def test_a_word_upload_keeps_its_structure_on_rerun_and_its_image_on_save(
    client: TestClient,
) -> None:
    from tests.content import wordfiles

    csrf = login(client, "ops")
    data = wordfiles.analyst_brief()
    files = {"file": ("周报.docx", data, "application/octet-stream")}
    r = client.post("/console/import", data={"csrf": csrf}, files=files)
    assert r.status_code == 200, r.text[:300]
    page = html.unescape(r.text)
    summary = re.search(r'id="import-summary".*?</section>', page, re.S)
    assert summary, page[-2000:]
    assert "章节 2 · 条目 3" in summary.group(0) and "图片 1" in summary.group(0)
    doc = _hidden(r.text, "doc")
    assert re.fullmatch(r"[0-9a-f]{64}", doc)
    # a re-run from the outline reads the kept document, not the flattened text
    form = {"csrf": csrf, "doc": doc, "text": "", "classes": _hidden(r.text, "classes")}
    r = client.post("/console/import", data=form | {"hints": "{}", "number": ""})
    assert r.status_code == 200 and "](images/word-" in html.unescape(r.text)
    markdown = re.search(r'<textarea name="markdown"[^>]*>(.*?)</textarea>', r.text, re.S)
    assert markdown
    r = client.post(
        "/console/import/save",
        data={"csrf": csrf, "doc": doc, "markdown": html.unescape(markdown.group(1))},
    )
    assert r.status_code == 303, r.text[:300]
    assert "第23期" in client.get(r.headers["location"]).text
    # a forged token is one clear line, never a path
    r = client.post("/console/import", data=form | {"doc": "../../etc/passwd", "hints": "{}"})
    assert r.status_code == 422 and "请重新上传" in html.unescape(r.text)


def test_a_correction_in_the_outline_is_kept_for_the_publication(client: TestClient) -> None:
    from newsletter.core.db import session_scope
    from newsletter.issues.store import ensure_publication
    from tests.content.test_house_style_rules import WEEK1, WEEK2

    with session_scope() as s:
        ensure_publication(s, "市场观察", "market")
    csrf = login(client, "ops")
    pubs = re.findall(r'<option value="([^"]+)">', client.get("/console/import").text)
    assert "market" in pubs, "the import form offers the publications"
    pub = "market"
    r = client.post("/console/import", data={"csrf": csrf, "text": WEEK1, "publication": pub})
    assert r.status_code == 200
    form = {
        "csrf": csrf,
        "text": WEEK1,
        "classes": _hidden(r.text, "classes"),
        "hints": "{}",
        "number": "",
        "publication": pub,
        "c3": "section",
    }
    r = client.post("/console/import", data=form)
    assert r.status_code == 200
    page = html.unescape(r.text)
    assert "## 一、要闻" in page and "### 3. 上海发布" in page  # the ◆ lines became its items
    # next week's brief in the same style, no corrections
    r = client.post("/console/import", data={"csrf": csrf, "text": WEEK2, "publication": pub})
    page = html.unescape(r.text)
    assert "## 一、政策" in page and "### 3. 北向资金" in page and "## 二、" not in page
    assert "刊物的导入规则（以前的更正）" in page


def test_rich_text_pasted_from_a_browser_keeps_its_structure(client: TestClient) -> None:
    csrf = login(client, "ops")
    clip = (
        "<html><body><!--StartFragment--><p><b>市场观察</b></p><p>第12期</p>"
        "<h2>一、宏观</h2><h3>央行开展逆回购操作</h3><p>来源：中国人民银行</p>"
        '<p>详见<a href="https://www.pbc.gov.cn/a.html">公告</a>。</p>'
        "<table><tr><td>期限</td><td>利率</td></tr><tr><td>7天</td><td>1.4%</td></tr></table>"
        "<!--EndFragment--></body></html>"
    )
    r = client.post(
        "/console/import", data={"csrf": csrf, "text": "市场观察 第12期 …", "html": clip}
    )
    assert r.status_code == 200, r.text[:300]
    page = html.unescape(r.text)
    assert "## 一、宏观" in page and "### 1. 央行开展逆回购操作" in page
    assert "[公告](<https://www.pbc.gov.cn/a.html>)" in page and "| 期限 | 利率 |" in page
    assert "number: 12" in page


def test_without_a_number_the_import_proposes_the_publications_next(client: TestClient) -> None:
    from newsletter.web.console import services as svc
    from tests.conftest import EXAMPLES
    from tests.console.seed import principal

    images = [(p.name, p.read_bytes()) for p in sorted((EXAMPLES / "images").glob("*.png"))]
    svc.upload_issue(
        principal("ops"), "issue-sample.md", (EXAMPLES / "issue-sample.md").read_bytes(), images
    )
    slug = svc.publication_choices()[0][0]
    csrf = login(client, "editor")
    brief = "市场观察周报\n一、要闻\n1、央行下调存款准备金率\n来源：中国人民银行\n正文。\n"
    r = client.post("/console/import", data={"csrf": csrf, "text": brief, "publication": slug})
    page = html.unescape(r.text)
    assert "number: 48" in page
    assert "暂定为第48期（刊物的下一期），请确认" in page


def test_promote_and_demote_and_the_tree_beside_the_outline(client: TestClient) -> None:
    csrf = login(client, "editor")
    r = client.post("/console/import", data={"csrf": csrf, "text": BRIEF})
    classes = _hidden(r.text, "classes")
    shown = json.loads(classes)
    assert shown["3"] == "section" and shown["4"] == "item"
    page = html.unescape(r.text)
    # the tree: 一、政策 holds 1、第一條
    tree = re.search(r'<ol class="tree small" id="import-tree".*?</ol>\s*</li>\s*</ol>', page, re.S)
    assert tree and "一、政策" in tree.group(0) and "第一條" in tree.group(0)
    assert 'name="set" value="3:item"' in page and 'name="set" value="4:section"' in page
    base = {"csrf": csrf, "text": BRIEF, "classes": classes, "hints": "{}", "number": ""}
    # promote the item to a section: the selects carry their unchanged values too
    form = {
        **base,
        **{f"c{n}": cls for n, cls in shown.items() if cls != "blank"},
        "set": "4:section",
    }
    r = client.post("/console/import", data=form)
    assert r.status_code == 200
    assert json.loads(_hidden(r.text, "hints")) == {"4": "section"}
    assert json.loads(_hidden(r.text, "classes"))["4"] == "section"
    # a value that is not a line and a class is ignored, never an error
    r = client.post("/console/import", data={**base, "set": "x:<script>"})
    assert r.status_code == 200 and json.loads(_hidden(r.text, "hints")) == {}
