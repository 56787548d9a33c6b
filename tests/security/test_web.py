"""F2 (URL schemes), HTML/script injection, response headers, drafts, body limits."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.core.safety.signing import delivery_token
from newsletter.core.safety.urlpolicy import safe_url
from newsletter.issues.store import render_issue
from newsletter.models import Delivery, Issue, Link, Publication, Rendition
from tests.factories import seed
from tests.security.conftest import issue_text

HOSTILE_URLS = [
    "javascript:alert(document.cookie)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "\x01javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "&#106;avascript:alert(1)",
    "&#x6A;avascript:alert(1)",
    "&amp;#106;avascript:alert(1)",
    "javascript&colon;alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "VBScript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/x",
    "\u2028javascript:alert(1)",
]
GOOD_URLS = [
    "https://www.gov.cn/zhengce/a.htm",
    "http://example.org/x?a=1&copy=2",
    "HTTPS://EXAMPLE.ORG/",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_url_policy_refuses_every_scheme_but_http_https(url: str) -> None:
    assert safe_url(url) is None
    assert safe_url(url, mailto=True, fragment=True) is None


@pytest.mark.parametrize("url", GOOD_URLS)
def test_url_policy_keeps_http_and_https(url: str) -> None:
    assert safe_url(url) == url


def test_mailto_only_where_it_fits() -> None:
    assert safe_url("mailto:editor@example.org") is None
    assert safe_url("mailto:editor@example.org", mailto=True) == "mailto:editor@example.org"
    assert safe_url("#s1") is None and safe_url("#s1", fragment=True) == "#s1"


_ATTR = re.compile(r"""\b(href|src|action|formaction)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)


def _links_of(body: str) -> list[str]:
    return [
        html.unescape(m.group(2) if m.group(2) is not None else m.group(3))
        for m in _ATTR.finditer(body)
    ]


def _assert_no_script_url(body: str, where: str) -> None:
    # The text may mention "javascript:" (escaped, shown as text); no attribute may hold it.
    for url in _links_of(body):
        if url.startswith(("#", "wxasset:", "/")) or "%%" in url:
            continue
        assert safe_url(url, mailto=True) is not None, f"{url!r} in {where}"


def _hostile_issue() -> str:
    body = "\n\n".join(
        f"链接{i} [点我]({u.strip()})" for i, u in enumerate(HOSTILE_URLS) if "\n" not in u
    )
    meta = (
        "::: meta\n发布机构：国务院办公厅\n文号：国办发〔2026〕1号\n发布日期：2026年1月1日\n"
        "原文链接：javascript:fetch('/api/users',{method:'POST'})\n:::\n\n"
    )
    extra = (
        '\n\n<script>alert(1)</script> <img src=x onerror=alert(1)> "><svg onload=alert(1)>'
        "\n\n![图](javascript:alert(1)) ![图2](data:image/svg+xml;base64,PHN2Zz4=)"
    )
    return issue_text(meta + body + extra).replace(
        "### 1. 测试条目", "### 1. 测试条目<script>alert(1)</script>"
    )


def test_f2_no_script_url_reaches_any_channel(as_role, anon: TestClient, pg_app: Settings) -> None:  # type: ignore[no-untyped-def]
    """The reported chain: a 原文链接 meta line with javascript: became a live link on the
    public archive.  Now no rendition (email, text, web archive, every WeChat article)
    carries a script URL, an event handler or a script tag from the issue text."""
    ops = as_role("ops")
    r = ops.post(
        "/api/issues", files={"file": ("issue.md", _hostile_issue().encode(), "text/markdown")}
    )
    assert r.status_code == 201, r.text
    issue_id = r.json()["id"]
    lint = ops.client.get(f"/api/issues/{issue_id}/lint").json()
    assert {m["code"] for m in lint["messages"]} & {"meta-url", "link-malformed"}
    with session_scope() as s:
        render_issue(s, issue_id)
        s.execute(update(Issue).where(Issue.id == issue_id).values(status="approved"))
        bodies = list(
            s.execute(
                select(Rendition.output, Rendition.body).where(Rendition.issue_id == issue_id)
            ).all()
        )
        slug = s.scalar(select(Publication.slug))
    assert len(bodies) >= 6
    for output, body in bodies:
        _assert_no_script_url(body, output)
        if output != "email_text":
            assert "<script" not in body.lower(), output
            assert not re.search(r"<[a-zA-Z][^>]*\son[a-z]+\s*=", body), output  # no live handler
    page = anon.get(f"/archive/{slug}/7")
    assert page.status_code == 200
    _assert_no_script_url(page.text, "archive")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    with session_scope() as s:
        urls = list(s.scalars(select(Link.url).where(Link.issue_id == issue_id)))
    assert all(
        safe_url(u) is not None
        or not u.lower().lstrip().startswith(("javascript", "data", "vbscript"))
        for u in urls
    )


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<b>x</b>", " JaVaScRiPt:x"])
def test_click_redirect_never_follows_a_stored_script_url(
    anon: TestClient, pg_app: Settings, url: str
) -> None:
    ids = seed(1)
    with session_scope() as s:
        s.execute(update(Link).where(Link.issue_id == ids["issue"]).values(url=url))
        from newsletter.delivery.sends import plan

        plan(s, ids["send"])
        did = s.scalar(select(Delivery.id))
    r = anon.get(f"/c/{delivery_token(did)}/1")
    assert r.status_code == 400
    assert "location" not in r.headers


def test_click_redirect_still_follows_https(anon: TestClient, pg_app: Settings) -> None:
    ids = seed(1)
    with session_scope() as s:
        from newsletter.delivery.sends import plan

        plan(s, ids["send"])
        did = s.scalar(select(Delivery.id))
    r = anon.get(f"/c/{delivery_token(did)}/1")
    assert r.status_code == 302 and r.headers["location"] == "https://www.gov.cn/zhengce/1.htm"


PUBLIC_PAGES = [
    "/archive/weekly/47",
    "/subscribe/{list}",
    "/healthz",
    "/openapi.json",
    "/console/login",
    "/u/bad-token",
    "/p/bad-token",
    "/confirm/bad",
]


def test_every_page_sends_the_security_headers(anon: TestClient, pg_app: Settings) -> None:
    ids = seed(0)
    for path in PUBLIC_PAGES:
        r = anon.get(path.format(list=ids["list"]))
        h = r.headers
        assert "frame-ancestors" in h.get("content-security-policy", ""), path
        assert "script-src 'self'" in h["content-security-policy"], path
        assert h.get("x-frame-options") in ("SAMEORIGIN", "DENY"), path
        assert h.get("x-content-type-options") == "nosniff", path
        assert h.get("referrer-policy"), path


def test_docs_are_off_outside_the_embedded_mode(anon: TestClient) -> None:
    assert anon.get("/docs").status_code == 404
    assert anon.get("/redoc").status_code == 404
    assert anon.get("/openapi.json").status_code == 200


def test_drafts_are_for_console_users_only_even_after_preview(
    as_role, anon: TestClient, pg_app: Settings
) -> None:  # type: ignore[no-untyped-def]
    ops = as_role("ops")
    r = ops.post(
        "/api/issues",
        files={"file": ("issue.md", issue_text("草稿正文。").encode(), "text/markdown")},
    )
    issue_id = r.json()["id"]
    assert ops.client.get(f"/api/issues/{issue_id}/preview").status_code == 200  # renders
    with session_scope() as s:
        slug = s.scalar(select(Publication.slug))
        assert s.scalar(select(Rendition.id).where(Rendition.issue_id == issue_id)) is not None
    for status in ("draft", "in_review"):
        with session_scope() as s:
            s.execute(update(Issue).where(Issue.id == issue_id).values(status=status))
        assert anon.get(f"/archive/{slug}/7").status_code == 404
        assert anon.get(f"/archive/{slug}/7?v=zh-Hant").status_code == 404
        assert ops.client.get(f"/archive/{slug}/7").status_code == 200
    with session_scope() as s:
        s.execute(update(Issue).where(Issue.id == issue_id).values(status="approved"))
    assert anon.get(f"/archive/{slug}/7").status_code == 200
    assert anon.get(f"/archive/{slug}/99999999999").status_code == 404


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("/api/segments/count", 2 * 1024 * 1024),
        ("/console/login", 2 * 1024 * 1024),
        ("/subscribe/1", 2 * 1024 * 1024),
        ("/api/issues", 31 * 1024 * 1024),
    ],
)
def test_request_bodies_are_limited(anon: TestClient, path: str, size: int) -> None:
    r = anon.post(path, content=b"x" * size, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "MB" in r.json()["detail"]


def test_chunked_bodies_are_counted_while_they_stream(anon: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"y" * 65536

    r = anon.post(
        "/api/segments/count", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
