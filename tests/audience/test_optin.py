"""Double opt-in over HTTP with a real SMTP server, and the list-bombing defences."""

from __future__ import annotations

import email
import email.policy
import re
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.audience.optin import form_stamp
from newsletter.audience.service import get_or_create_list
from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.core.safety.signing import confirm_token
from newsletter.delivery.system_mail import subscribe
from newsletter.models import Subscriber, Subscription
from newsletter.web.app import create_app

LINK = re.compile(r"https?://\S+/confirm/(\S+)")


@pytest.fixture
def optin(any_db, smtp_sink):  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    reset_settings(any_db.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    with session_scope() as s:
        list_id = get_or_create_list(s, "周报订阅").id
    return list_id, sink


def _status(email_addr: str) -> str | None:
    with session_scope() as s:
        return s.scalar(
            select(Subscription.status)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscriber.email == email_addr)
        )


def _old_stamp(monkeypatch) -> str:  # type: ignore[no-untyped-def]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 10)
    stamp = form_stamp()
    monkeypatch.setattr(time, "time", real)
    return stamp


def test_subscribe_confirm_by_post_only(optin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    list_id, sink = optin
    client = TestClient(create_app())
    page = client.get(f"/subscribe/{list_id}?v=zh-Hant")
    assert page.status_code == 200 and "訂閱" in page.text
    r = client.post(
        f"/subscribe/{list_id}",
        data={
            "email": "Wang@Example.com",
            "name": "王芳",
            "variant": "zh-Hant",
            "stamp": _old_stamp(monkeypatch),
            "website": "",
        },
    )
    assert r.status_code == 200 and "請查收郵件" in r.text
    assert _status("wang@example.com") == "unconfirmed"
    assert len(sink.messages) == 1
    msg = email.message_from_bytes(sink.messages[0][2], policy=email.policy.default)
    assert "請確認訂閱" in str(msg["Subject"])
    token = LINK.search(msg.get_content()).group(1)  # type: ignore[union-attr]
    assert client.get(f"/confirm/{token}").status_code == 200  # a scanner's GET…
    assert _status("wang@example.com") == "unconfirmed"  # …confirms nothing
    r = client.post(f"/confirm/{token}")
    assert r.status_code == 200 and "訂閱成功" in r.text
    assert _status("wang@example.com") == "active"


def test_forged_or_expired_confirmation_is_refused(optin) -> None:  # type: ignore[no-untyped-def]
    list_id, _sink = optin
    client = TestClient(create_app())
    subscribe("li@example.com", list_id)
    with session_scope() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "li@example.com"))
    assert sid is not None
    expired = confirm_token(sid, list_id, ttl_seconds=-120)
    assert client.post(f"/confirm/{expired}").status_code == 400
    good = confirm_token(sid, list_id, ttl_seconds=3600)
    forged = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert client.post(f"/confirm/{forged}").status_code == 400
    assert _status("li@example.com") == "unconfirmed"


def test_list_bombing_sends_at_most_one_mail_per_address_and_limits_ips(optin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    list_id, sink = optin
    for _ in range(5):  # a bot repeats one victim's address
        subscribe("victim@example.com", list_id, ip="198.51.100.7")
    assert len(sink.messages) == 1
    # one IP trying many strangers is cut off after the hourly limit (5)
    outcomes = [
        subscribe(f"stranger{i}@example.com", list_id, ip="203.0.113.9").outcome for i in range(8)
    ]
    assert outcomes.count("sent") == 5 and outcomes[-1] == "throttled"
    # honeypot and a form submitted instantly are treated as bots: no mail
    before = len(sink.messages)
    assert subscribe("a@example.com", list_id, honeypot="http://spam").outcome == "bot"
    assert subscribe("b@example.com", list_id, stamp=form_stamp()).outcome == "bot"
    assert len(sink.messages) == before


def test_already_subscribed_gets_the_same_answer_and_no_mail(optin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    list_id, sink = optin
    subscribe("zhao@example.com", list_id)
    token = LINK.search(
        email.message_from_bytes(  # type: ignore[union-attr]
            sink.messages[0][2], policy=email.policy.default
        ).get_content()
    ).group(1)
    client = TestClient(create_app())
    client.post(f"/confirm/{token}")
    r = client.post(
        f"/subscribe/{list_id}",
        data={"email": "zhao@example.com", "stamp": _old_stamp(monkeypatch)},
    )
    assert r.status_code == 200 and "请查收邮件" in r.text
    assert len(sink.messages) == 1


def test_invalid_address_is_refused_with_a_message(optin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    list_id, sink = optin
    r = TestClient(create_app()).post(
        f"/subscribe/{list_id}", data={"email": "not an address", "stamp": _old_stamp(monkeypatch)}
    )
    assert r.status_code == 422 and "邮箱地址无效" in r.text and sink.messages == []
