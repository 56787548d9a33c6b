"""Pixel, click and unsubscribe endpoints over HTTP (FastAPI app, real database)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.core.db import session_scope
from newsletter.core.safety.signing import delivery_token, unsubscribe_token
from newsletter.delivery.run import drive_inline
from newsletter.models import Delivery, Event, Subscriber, Subscription, Suppression
from newsletter.reports.stats import send_stats
from newsletter.web.app import create_app
from newsletter.web.public import PIXEL
from tests.factories import seed

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko)"


@pytest.fixture
def sent(any_db):  # type: ignore[no-untyped-def]
    ids = seed(3)
    assert drive_inline(ids["send"]) == "finished"  # maildir outbox
    with session_scope() as s:
        ids["deliveries"] = list(s.scalars(select(Delivery.id).order_by(Delivery.id)))
    return ids


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(), follow_redirects=False)


def _events() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def test_pixel_records_open_and_counts_unique_once(sent, client) -> None:  # type: ignore[no-untyped-def]
    tok = delivery_token(sent["deliveries"][0])
    for _ in range(3):
        r = client.get(f"/o/{tok}.gif", headers={"User-Agent": BROWSER})
        assert r.status_code == 200 and r.content == PIXEL and len(PIXEL) == 43
        assert "no-store" in r.headers["cache-control"]
    with session_scope() as s:
        st = send_stats(s, sent["send"])
    assert st["opens_unique"] == 1 and st["opens_total_human"] == 3


def test_forged_pixel_token_answers_gif_but_records_nothing(sent, client) -> None:  # type: ignore[no-untyped-def]
    tok = delivery_token(sent["deliveries"][0])
    forged = tok[:-2] + ("AA" if not tok.endswith("AA") else "BB")
    r = client.get(f"/o/{forged}.gif")
    assert r.status_code == 200 and r.content == PIXEL
    r = client.get("/o/garbage.gif")
    assert r.status_code == 200 and r.content == PIXEL
    assert _events() == 0


def test_apple_mpp_open_is_machine(sent, client) -> None:  # type: ignore[no-untyped-def]
    tok = delivery_token(sent["deliveries"][1])
    client.get(f"/o/{tok}.gif", headers={"User-Agent": "Mozilla/5.0"})
    with session_scope() as s:
        st = send_stats(s, sent["send"])
        ev = s.scalars(select(Event)).one()
    assert st["opens_unique"] == 0 and st["opens_total_machine"] == 1
    assert ev.cls == "machine" and ev.rule == "apple_mpp_bare_ua"


def test_click_redirects_to_stored_url_only(sent, client) -> None:  # type: ignore[no-untyped-def]
    tok = delivery_token(sent["deliveries"][0])
    r = client.get(f"/c/{tok}/1?url=https://evil.example.net/", headers={"User-Agent": BROWSER})
    assert r.status_code == 302
    assert r.headers["location"] == "https://www.gov.cn/zhengce/1.htm"
    forged = tok[:-1] + ("A" if tok[-1] != "A" else "B")
    r = client.get(f"/c/{forged}/1")
    assert r.status_code == 302 and r.headers["location"] == "https://www.gov.cn/zhengce/1.htm"
    assert _events() == 1  # the forged click redirected but recorded nothing
    assert client.get(f"/c/{tok}/99").status_code == 404


def _subscriber(email: str) -> tuple[int, str]:
    with session_scope() as s:
        sub = s.scalars(select(Subscriber).where(Subscriber.email == email)).one()
        status = s.scalar(select(Subscription.status).where(Subscription.subscriber_id == sub.id))
        return sub.id, status or ""


def test_get_never_unsubscribes_and_one_click_post_does(sent, client) -> None:  # type: ignore[no-untyped-def]
    sid, _ = _subscriber("reader1@example.com")
    tok = unsubscribe_token(sid, sent["list"])
    r = client.get(f"/u/{tok}")
    assert r.status_code == 200 and ("退订" in r.text or "退訂" in r.text)
    assert _subscriber("reader1@example.com")[1] == "active"
    r = client.post(f"/u/{tok}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and "set-cookie" not in r.headers
    assert _subscriber("reader1@example.com")[1] == "unsubscribed"


def test_unsubscribe_all_suppresses_address(sent, client) -> None:  # type: ignore[no-untyped-def]
    sid, _ = _subscriber("reader2@example.com")
    r = client.post(f"/u/{unsubscribe_token(sid, sent['list'])}", data={"scope": "all"})
    assert r.status_code == 200 and ("已退订" in r.text or "已退訂" in r.text)
    with session_scope() as s:
        sup = s.scalar(select(Suppression).where(Suppression.email == "reader2@example.com"))
    assert sup is not None and sup.reason == "unsubscribe_all"


def test_forged_unsubscribe_token_is_refused(sent, client) -> None:  # type: ignore[no-untyped-def]
    sid, _ = _subscriber("reader1@example.com")
    tok = unsubscribe_token(sid, sent["list"])
    other = unsubscribe_token(sid + 1, sent["list"])
    forged = other.split(".")[0] + "." + tok.split(".")[1]  # someone else's id, my signature
    r = client.post(f"/u/{forged}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 400
    assert client.get(f"/u/{forged}").status_code == 400
    assert _subscriber("reader2@example.com")[1] == "active"
