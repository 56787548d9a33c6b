"""One message catalogue (issue 31): every code used exists, has Chinese and English with the
same parameters, and the API answers {code, message} in the request's language."""

from __future__ import annotations

import re
import string
from pathlib import Path

from fastapi.testclient import TestClient

from newsletter.core.catalogue import catalogue, coded, message
from newsletter.core.errors import StateError

ROOT = Path(__file__).resolve().parents[2]
USED = re.compile(r"""(?:coded\([\w.]+,\s*|message\()\s*"([a-z_]+(?:\.[a-z_]+)+)\"""")


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_every_entry_is_complete_and_its_languages_agree() -> None:
    entries = catalogue()
    assert len(entries) >= 20
    for code, text in entries.items():
        assert re.fullmatch(r"[a-z]+(\.[a-z_]+)+", code), code
        assert text["zh"].strip() and text["en"].strip(), code
        assert re.search(r"[\u4e00-\u9fff]", text["zh"]), code  # Chinese first, really Chinese
        # a parameter only one language shows is named for it (state_zh, what_en …)
        zh = {f for f in _fields(text["zh"]) if not f.endswith("_zh")}
        en = {f for f in _fields(text["en"]) if not f.endswith("_en")}
        assert all(not f.endswith("_zh") for f in _fields(text["en"])), code
        assert zh == en, code


def test_every_code_the_product_uses_is_in_the_catalogue() -> None:
    used = {
        m.group(1)
        for path in (ROOT / "newsletter").rglob("*.py")
        for m in USED.finditer(path.read_text(encoding="utf-8"))
    }
    assert len(used) >= 10
    assert used <= set(catalogue()), sorted(used - set(catalogue()))


def test_a_coded_error_is_one_line_chinese_first_with_its_code() -> None:
    err = coded(StateError, "review.cannot_send_back", number=47, state_en="sent", state_zh="发送")
    assert str(err) == "第47期已发送，不能退回修改 / issue 47 is sent; it cannot be sent back"
    assert err.code == "review.cannot_send_back"  # type: ignore[attr-defined]
    assert message("schedule.bad_time").text("en").startswith("bad time")


def test_the_api_answers_code_and_message_in_the_requests_language(client: TestClient) -> None:
    from newsletter.core.db import session_scope
    from newsletter.issues.store import ensure_publication
    from tests.conftest import EXAMPLES
    from tests.console.helpers import login

    with session_scope() as s:
        ensure_publication(s, "政策周报", "weekly")
        ensure_publication(s, "合规月报", "monthly")
    csrf = login(client, "editor")
    source = (EXAMPLES / "issue-sample.md").read_bytes().replace(b"publication:", b"x-pub:")
    answers = {}
    for lang, accept in (("zh", "zh-CN"), ("zh-Hant", "zh-TW"), ("en", "en-US")):
        r = client.post(
            "/api/issues",
            files={"file": ("issue.md", source, "text/markdown")},
            headers={"X-CSRF-Token": csrf, "Accept-Language": accept},
        )
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["code"] == "publication.choose"
        answers[lang] = body["message"]
    assert answers["zh"].startswith("有多个刊物")
    assert answers["zh-Hant"].startswith("有多個刊物")
    assert answers["en"].startswith("there are several publications") and "weekly" in answers["en"]
    missing = client.get("/api/issues/999999", headers={"Accept-Language": "en"}).json()
    assert missing["code"] == "error.not_found" and missing["detail"]
