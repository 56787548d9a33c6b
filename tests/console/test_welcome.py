"""The welcome series in the console and the JSON API (issue 32): an editor manages a
list's steps; lower roles cannot; refusals are coded; hostile Markdown in a step is
sanitised like an issue's; arbitrary Unicode never gets past the checks unrendered."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from newsletter.core.catalogue import catalogue
from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError
from newsletter.delivery import welcome
from newsletter.models import AuditLog, WelcomeStep
from tests.console.helpers import login
from tests.factories import seed

STEP = "---\ntitle: 欢迎订阅政策周报\n---\n\n感谢订阅。[往期](https://news.example.org/archive/)\n"
HOSTILE = """---
title: "\\"><svg onload=alert(1)>欢迎"
---

<script>alert('x')</script>

<img src=x onerror=alert(2)>

[点我](javascript:alert(3)) [再点](JaVaScRiPt:alert(4)) [数据](data:text/html,<script>alert(5)</script>)

正文<iframe src="https://evil.example/"></iframe>
"""


def _setup(client: TestClient, role: str = "editor") -> tuple[int, dict[str, str]]:
    ids = seed(1)
    return ids["list"], {"X-CSRF-Token": login(client, role)}


def test_an_editor_manages_the_series_through_the_api(
    client: TestClient, console_settings: Settings
) -> None:
    list_id, h = _setup(client)
    url = f"/api/lists/{list_id}/welcome"
    r = client.post(url, json={"source": STEP, "delay": "立即"}, headers=h)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["delay"]["zh"] == "立即" and first["title"] == "欢迎订阅政策周报"
    r = client.post(url, json={"source": STEP.replace("欢迎订阅", "第二封"), "delay": "2 天后"},
                    headers=h)  # fmt: skip
    second = r.json()
    assert second["delay_seconds"] == 172800 and second["position"] == 2
    r = client.patch(f"{url}/{first['id']}", json={"delay": "3 小时后"}, headers=h)
    assert r.status_code == 200 and r.json()["delay_seconds"] == 10800
    r = client.post(f"{url}/{second['id']}/move", json={"direction": "up"}, headers=h)
    assert [s["id"] for s in r.json()["steps"]] == [second["id"], first["id"]]
    got = client.get(f"{url}/{first['id']}").json()
    assert got["source"] == STEP and got["stats"]["sent"] == 0
    r = client.post(f"{url}/lint", json={"source": STEP}, headers=h)
    assert r.status_code == 200 and all(m["level"] != "error" for m in r.json()["messages"])
    r = client.post("/api/lists/999999/welcome/lint", json={"source": STEP}, headers=h)
    assert r.status_code == 404 and r.json()["code"] == "welcome.list_not_found"
    # every refusal is coded, in the request's language
    r = client.post(url, json={"source": STEP, "delay": "下辈子"}, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "welcome.bad_delay"
    assert "延迟" in r.json()["message"]
    r = client.post(url, json={"source": STEP, "delay": "soon"},
                    headers={**h, "Accept-Language": "en"})  # fmt: skip
    assert (
        r.json()["code"] == "welcome.bad_delay" and "cannot read the delay" in r.json()["message"]
    )
    bad = "---\ntitle: 坏\n---\n\n![图](../../../etc/passwd)\n"
    r = client.post(url, json={"source": bad, "delay": "立即"}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "welcome.lint", r.text
    r = client.get(f"{url}/999999")
    assert r.status_code == 404 and r.json()["code"] == "welcome.step_not_found"
    r = client.get("/api/lists/999999/welcome")
    assert r.status_code == 404 and r.json()["code"] == "welcome.list_not_found"
    assert client.delete(f"{url}/{second['id']}", headers=h).status_code == 204
    assert [s["id"] for s in client.get(url).json()["steps"]] == [first["id"]]
    with session_scope() as s:
        actions = set(s.scalars(select(AuditLog.action).where(AuditLog.actor == "editor")))
    assert {"welcome.add", "welcome.update", "welcome.move", "welcome.delete"} <= actions


def test_the_console_pages_add_edit_and_preview_a_step(
    client: TestClient, console_settings: Settings
) -> None:
    list_id, h = _setup(client)
    page = client.get(f"/console/lists/{list_id}/welcome")
    assert page.status_code == 200 and "欢迎邮件" in page.text and "还没有欢迎邮件" in page.text
    r = client.post(f"/console/lists/{list_id}/welcome",
                    data={"csrf": h["X-CSRF-Token"], "source": STEP, "delay": "2 天后"})  # fmt: skip
    assert r.status_code == 303, r.text
    step_url = r.headers["location"]
    assert re.fullmatch(rf"/console/lists/{list_id}/welcome/\d+", step_url)
    shown = client.get(step_url)
    assert shown.status_code == 200 and "2 天后" in shown.text and "welcome-preview" in shown.text
    for v, word in (("zh-Hans", "欢迎订阅"), ("zh-Hant", "歡迎訂閱")):
        frame = client.get(f"{step_url}/frame?v={v}")
        assert frame.status_code == 200 and word in frame.text
        assert "sandbox" in frame.headers["content-security-policy"]
    r = client.post(step_url, data={"csrf": h["X-CSRF-Token"], "source": STEP, "delay": "明天吧"})
    assert r.status_code == 303  # refused: back to the page with the reason, nothing changed
    with session_scope() as s:
        assert s.scalar(select(WelcomeStep.delay_seconds)) == 172800
    client.cookies.set("nl_lang", "en")
    assert "Welcome series" in client.get(f"/console/lists/{list_id}/welcome").text


def test_lower_roles_cannot_change_it_and_an_editor_cannot_do_ops_or_admin_things(
    client: TestClient, console_settings: Settings
) -> None:
    list_id, h = _setup(client, "marketing")
    url = f"/api/lists/{list_id}/welcome"
    assert client.get(url).status_code == 200  # every role may read the figures
    assert client.post(url, json={"source": STEP}, headers=h).status_code == 403
    assert client.get(f"/console/lists/{list_id}/welcome").status_code == 403
    client.cookies.clear()
    h = {"X-CSRF-Token": login(client, "editor")}
    assert client.post(f"/console/lists/{list_id}/delete", data={"csrf": h["X-CSRF-Token"]}
                       ).status_code == 403  # fmt: skip
    r = client.post("/api/users", json={"username": "mallory", "password": "x" * 12,
                                         "role": "admin"}, headers=h)  # fmt: skip
    assert r.status_code == 403
    # a session without its CSRF token changes nothing
    assert client.post(url, json={"source": STEP}).status_code == 403
    assert client.post(f"/console/lists/{list_id}/welcome", data={"source": STEP}
                       ).status_code == 403  # fmt: skip
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(WelcomeStep)) == 0


def test_hostile_markdown_in_a_step_is_sanitised_like_an_issue(
    client: TestClient, console_settings: Settings
) -> None:
    list_id, h = _setup(client)
    r = client.post(f"/api/lists/{list_id}/welcome", json={"source": HOSTILE}, headers=h)
    assert r.status_code == 201, r.text
    step = r.json()
    page = client.get(f"/console/lists/{list_id}/welcome").text
    assert "<svg onload" not in page and "&lt;svg onload" in page
    edit = client.get(f"/console/lists/{list_id}/welcome/{step['id']}").text
    assert "<script>alert" not in edit  # the source shows escaped in its textarea
    for v in ("zh-Hans", "zh-Hant"):
        mail = client.get(f"/console/lists/{list_id}/welcome/{step['id']}/frame?v={v}").text
        assert _live_markup(mail) == [], v
        assert "alert(2)" in mail  # the hostile text is there, as text


def _live_markup(html: str) -> list[str]:
    """Elements and attributes that would run or load something: script and frame
    elements, event handlers, and links or sources to javascript:, vbscript: or data:."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Walk(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("script", "iframe", "object", "embed", "svg"):
                found.append(tag)
            for name, value in attrs:
                v = (value or "").strip().lower()
                if name.startswith("on"):
                    found.append(f"{tag}@{name}")
                if name in ("href", "src") and v.startswith(("javascript:", "vbscript:", "data:")):
                    found.append(f"{tag}@{name}={v[:30]}")

    Walk().feed(html)
    return found


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    title=st.text(min_size=1, max_size=40).filter(lambda t: t.strip()),
    body=st.text(max_size=300),
)
def test_arbitrary_unicode_content_is_refused_with_a_code_or_rendered_safely(
    sqlite_settings: Settings, title: str, body: str
) -> None:
    from newsletter.web.console.services.issues import frame_html

    with session_scope() as s:
        from newsletter.audience.service import get_or_create_list
        from newsletter.issues.store import ensure_publication

        ensure_publication(s, "政策周报", "weekly")
        list_id = get_or_create_list(s, "周报订阅").id
    source = f"---\ntitle: {title!r}\n---\n\n{body}\n"
    try:
        with session_scope() as s:
            step, _msgs = welcome.add_step(s, list_id, source, "立即", "fuzz")
            issue_id, step_id = step.issue_id, step.id
    except NewsletterError as exc:
        assert getattr(exc, "code", None) in catalogue() or "/" in str(exc), exc
        return
    assert _live_markup(frame_html(issue_id, "email_html", "zh-Hant")) == []
    with session_scope() as s:
        welcome.delete_step(s, list_id, step_id, "fuzz")
