"""WeChat readers can get the email version: the article shows the subscribe URL as
text, and a sign-up through it is recorded as WeChat-originated."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.audience.optin import form_stamp, signup_source
from newsletter.audience.service import get_or_create_list
from newsletter.content.parser import parse_issue
from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.issues.store import context_for, ensure_publication
from newsletter.models import Publication, Subscriber
from newsletter.render.wechat import render_wechat
from newsletter.web.app import create_app
from tests.conftest import MovableClock

ISSUE = "---\ntitle: 周报\nnumber: 3\npublication: 政策周报\n---\n\n导语。\n\n## 一、政策\n\n### 1. 条目\n\n正文。\n"


@pytest.fixture
def pub(any_db: Settings, smtp_sink) -> str:  # type: ignore[no-untyped-def]
    port, _sink = smtp_sink
    reset_settings(any_db.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    with session_scope() as s:
        p = ensure_publication(s, "政策周报", "weekly")
        p.default_list_id = get_or_create_list(s, "周报订阅").id
    return "weekly"


def test_wechat_headline_shows_the_subscribe_url_as_text(pub: str) -> None:
    with session_scope() as s:
        ctx = context_for(s.scalar(select(Publication)))
    head = render_wechat(parse_issue(ISSUE), ctx)[0]
    url = "https://news.example.org/subscribe/weekly?src=wechat"
    assert url in head.content and "订阅邮件版" in head.content
    assert f'href="{url}' not in head.content  # text, since WeChat would not follow it
    hant = render_wechat(parse_issue(ISSUE.replace("---\n\n", "---\n\n", 1)), ctx)
    assert hant[0].content.count(url) == 1


def test_a_sign_up_from_wechat_is_counted(pub: str, moved_clock: MovableClock) -> None:
    c = TestClient(create_app())
    form = c.get("/subscribe/weekly?src=wechat")
    assert form.status_code == 200
    assert '<input type="hidden" name="src" value="wechat">' in form.text
    stamp = re.search(r'name="stamp" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    moved_clock.advance(2.1)  # the form refuses answers faster than a person types
    r = c.post(
        "/subscribe/weekly?src=wechat",
        data={"email": "li@example.com", "stamp": stamp, "src": "wechat", "website": ""},
    )
    assert r.status_code == 200 and "请查收邮件" in r.text
    r = c.post(
        "/subscribe/weekly",
        data={"email": "wu@example.com", "stamp": stamp, "website": ""},
    )
    assert r.status_code == 200
    with session_scope() as s:
        sources = dict(s.execute(select(Subscriber.email, Subscriber.source)).all())
        wechat = s.scalar(select(func.count()).where(Subscriber.source.like("%;src=wechat")))
    assert sources == {
        "li@example.com": "form:周报订阅;src=wechat",
        "wu@example.com": "form:周报订阅",
    }
    assert wechat == 1


def test_hostile_or_unknown_sources_are_dropped(pub: str) -> None:
    c = TestClient(create_app())
    for src in ('"><script>alert(1)</script>', "WeChat;src=x", "a" * 200, "微信"):
        page = c.get("/subscribe/weekly", params={"src": src})
        assert page.status_code == 200 and "<script>alert" not in page.text
        assert 'name="src"' not in page.text, src
    assert signup_source("L", "wechat") == "form:L;src=wechat"
    assert signup_source("L", "x;y") == "form:L"
    assert c.get("/subscribe/no-such-pub?src=wechat").status_code == 404
    assert c.get("/subscribe/99999999999999999999").status_code == 404
    assert form_stamp()
