"""The console's message catalogues (gettext .po, read with Babel): complete in English
and Traditional Chinese, Traditional really Traditional, no Chinese text in a template
outside ``_()``, and no page that asks for a message the catalogue lacks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsletter.content.variants import convert_text
from newsletter.core.config import Settings
from newsletter.web.console import i18n
from tests.console.helpers import login
from tests.console.seed import seed

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates" / "console"
CJK = re.compile(r"[\u3400-\u9fff]")
#: Chinese that is data or a language's own name, not interface text.
ALLOWED = {"简体", "繁體", '{"attr": "city", "op": "eq", "value": "北京"}'}

sys.path.insert(0, str(ROOT / "scripts"))
import console_catalog  # noqa: E402


def test_every_message_is_translated_in_both_catalogues() -> None:
    ids = console_catalog.template_ids() | console_catalog.table_ids()
    assert len(ids) > 300
    missing_en = sorted(i for i in ids if not i18n.EN.get(i))
    missing_hant = sorted(i for i in ids if not i18n.HANT.get(i))
    assert not missing_en, missing_en[:20]
    assert not missing_hant, missing_hant[:20]
    for mid, en in i18n.EN.items():
        assert not CJK.search(en), (mid, en)


def test_traditional_is_traditional_and_keeps_mainland_words() -> None:
    for mid, hant in i18n.HANT.items():
        assert convert_text(hant) == hant, (mid, hant)  # nothing left to convert
    assert i18n.HANT["发送"] == "發送" and i18n.HANT["设置"] == "設置"  # not 設定 (Taiwan)
    assert i18n.HANT["用户"] == "用戶"  # not 使用者 (Taiwan phrase table)


def test_catalogues_are_up_to_date() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "console_catalog.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr


def test_no_chinese_outside_translation_calls() -> None:
    for path in sorted(TEMPLATES.glob("*.html")):
        text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", "", path.read_text("utf-8"), flags=re.S)
        for piece in re.findall(r"[^<>\n]*[\u3400-\u9fff][^<>\n]*", text):
            assert piece.strip() in ALLOWED or any(a in piece for a in ALLOWED), (path.name, piece)


@pytest.mark.parametrize("lang", ["en", "zh-Hant"])
def test_every_page_finds_its_messages(
    client: TestClient, console_settings: Settings, tmp_path: Path, lang: str
) -> None:
    data = seed(tmp_path)
    issue_id, send_id = data["issue"]["id"], data["send"]["id"]
    list_id = data["lists"][0]["id"]
    i18n.MISSES[lang].clear()
    client.get("/console/lang", params={"to": lang})
    assert client.get("/console/login").status_code == 200
    login(client, "admin")
    pages = [
        "/console/",
        "/console/issues",
        f"/console/issues/{issue_id}",
        "/console/import",
        "/console/sends",
        f"/console/sends/{send_id}",
        "/console/subscribers",
        "/console/subscribers?q=a",
        f"/console/lists/{list_id}",
        "/console/stats",
        f"/console/stats/{send_id}",
        "/console/settings",
        "/console/audit",
        "/console/account",
        "/console/bounces",
        "/console/no-such-page",
        f"/console/editor/{issue_id}",
        "/console/warmup",
        "/console/jobs",
        "/console/stats?from=2026-01-01&to=2099-12-31",
        "/console/stats?from=2026-13-01",
        f"/console/stats/compare?ids={send_id}&ids=999999",
        f"/console/stats/compare?ids={send_id}",
    ]
    for url in pages:
        r = client.get(url)
        assert r.status_code in (200, 404, 422), (url, r.status_code)
        html_lang = re.search(r'<html lang="([^"]+)"', r.text)
        assert html_lang and html_lang.group(1) == ("en" if lang == "en" else "zh-Hant"), url
    assert not i18n.MISSES[lang], sorted(i18n.MISSES[lang])[:20]
    home = client.get("/console/").text
    if lang == "zh-Hant":
        assert "發送" in home and "发送" not in re.sub(r"<[^>]+>", "", home).replace("简体", "")
    else:
        assert ">Sends<" in home
