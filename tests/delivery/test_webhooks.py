"""SES (through SNS, signatures verified with a locally generated certificate) and Postmark webhooks."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.core.db import session_scope
from newsletter.core.safety.signing import delivery_token
from newsletter.delivery.run import drive_inline
from newsletter.delivery.webhooks import make_router, sns_string_to_sign
from newsletter.models import AuditLog, Delivery, Event, Subscriber, Suppression
from tests.factories import seed

CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000.pem"
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-feedback"


@pytest.fixture(scope="module")
def signing() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def client(signing):  # type: ignore[no-untyped-def]
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return signing[1]

    app = FastAPI()
    app.include_router(make_router(fetch))
    c = TestClient(app)
    c.fetched = fetched  # type: ignore[attr-defined]
    return c


def _sign(msg: dict, key: rsa.RSAPrivateKey, version: str = "1") -> dict:  # type: ignore[type-arg]
    msg = {**msg, "SignatureVersion": version, "SigningCertURL": CERT_URL}
    algo = hashes.SHA1() if version == "1" else hashes.SHA256()
    msg["Signature"] = base64.b64encode(
        key.sign(sns_string_to_sign(msg), padding.PKCS1v15(), algo)
    ).decode()
    return msg


def _notification(ses: dict, key: rsa.RSAPrivateKey, version: str = "1", **extra: str) -> dict:  # type: ignore[type-arg]
    msg = {
        "Type": "Notification",
        "MessageId": "1e7b0b1c-0000-4000-8000-000000000001",
        "TopicArn": TOPIC,
        "Message": json.dumps(ses, ensure_ascii=False),
        "Timestamp": "2026-11-30T01:00:00.000Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        **extra,
    }
    return _sign(msg, key, version)


def _post(client, msg: dict):  # type: ignore[no-untyped-def,type-arg]
    # SNS posts JSON with Content-Type text/plain.
    return client.post(
        "/webhooks/ses",
        content=json.dumps(msg),
        headers={"Content-Type": "text/plain; charset=UTF-8"},
    )


def _sent(n: int = 3) -> list[tuple[int, str, str]]:
    ids = seed(n)
    assert drive_inline(ids["send"]) == "finished"
    with session_scope() as s:
        rows = s.execute(
            select(Delivery.id, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .order_by(Delivery.id)
        ).all()
    return [(d, e, delivery_token(d)) for d, e in rows]


def _bounce(token: str, addr: str, btype: str = "Permanent", status: str = "5.1.1") -> dict:  # type: ignore[type-arg]
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": btype,
            "bounceSubType": "General",
            "feedbackId": f"fb-{token[:6]}-{btype}",
            "bouncedRecipients": [
                {
                    "emailAddress": addr,
                    "status": status,
                    "action": "failed",
                    "diagnosticCode": f"smtp; 550 {status} user unknown",
                }
            ],
        },
        "mail": {
            "source": f"bounces+{token}@example.org",
            "messageId": "0100018c-ses",
            "destination": [addr],
        },
    }


def _suppression(addr: str) -> str | None:
    with session_scope() as s:
        return s.scalar(select(Suppression.reason).where(Suppression.email == addr))


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_permanent_bounce_signature_v1_and_v2(any_db, client, signing, version: str) -> None:  # type: ignore[no-untyped-def]
    rows = _sent(3)
    did, addr, token = rows[1]
    r = _post(
        client,
        _notification(
            _bounce(token, addr), signing[0], version, Subject="Amazon SES Email Event Notification"
        ),
    )
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [{"kind": "hard", "delivery": did, "applied": True, "note": ""}]
    with session_scope() as s:
        assert s.get(Delivery, did).state == "bounced"  # type: ignore[union-attr]
    assert _suppression(addr) == "hard_bounce"
    assert client.fetched == [CERT_URL]
    # The certificate is cached.
    _post(client, _notification(_bounce(token, addr), signing[0], version))
    assert client.fetched == [CERT_URL]


def test_ses_transient_bounce_is_soft(sqlite_settings, client, signing) -> None:  # type: ignore[no-untyped-def]
    did, addr, token = _sent(1)[0]
    r = _post(client, _notification(_bounce(token, addr, "Transient", "4.4.7"), signing[0]))
    assert r.json()["results"][0]["kind"] == "soft"
    with session_scope() as s:
        d = s.get(Delivery, did)
        assert d is not None and d.state == "sent" and "4.4.7" in (d.last_reply or "")
    assert _suppression(addr) is None


def test_ses_complaint(any_db, client, signing) -> None:  # type: ignore[no-untyped-def]
    did, addr, token = _sent(2)[0]
    ses = {
        "notificationType": "Complaint",
        "complaint": {
            "feedbackId": "fb-1",
            "complaintFeedbackType": "abuse",
            "complainedRecipients": [{"emailAddress": addr}],
        },
        "mail": {"source": f"bounces+{token}@example.org", "messageId": "x"},
    }
    r = _post(client, _notification(ses, signing[0], "2"))
    assert r.json()["results"][0] == {
        "kind": "complaint",
        "delivery": did,
        "applied": True,
        "note": "",
    }
    assert _suppression(addr) == "complaint"
    _post(client, _notification(ses, signing[0], "2"))  # redelivered by SNS: counted once
    with session_scope() as s:
        assert [
            e.delivery_id for e in s.scalars(select(Event).where(Event.kind == "complaint"))
        ] == [did]


def test_ses_bounce_without_verp_suppresses_by_address(sqlite_settings, client, signing) -> None:  # type: ignore[no-untyped-def]
    ses = _bounce("x", "stranger@example.net")
    ses["mail"]["source"] = "news@example.org"
    r = _post(client, _notification(ses, signing[0]))
    assert r.json()["results"][0]["applied"] is True
    assert _suppression("stranger@example.net") == "hard_bounce"


def test_ses_refuses_bad_signatures_and_cert_urls(sqlite_settings, client, signing) -> None:  # type: ignore[no-untyped-def]
    good = _notification(_bounce("x", "victim@example.com"), signing[0])
    tampered = {**good, "Message": good["Message"].replace("victim", "other")}
    assert _post(client, tampered).status_code == 403
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert (
        _post(client, _notification(_bounce("x", "victim@example.com"), other_key)).status_code
        == 403
    )
    for url in (
        "http://sns.us-east-1.amazonaws.com/c.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/c.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/c.pem",
        "https://s3.amazonaws.com/bucket/c.pem",
        "https://sns.us-east-1.amazonaws.com/c.txt",
    ):
        assert _post(client, {**good, "SigningCertURL": url}).status_code == 403, url
    assert _post(client, {**good, "SignatureVersion": "3"}).status_code == 403
    assert client.post("/webhooks/ses", content=b"not json").status_code == 400
    assert client.fetched == [CERT_URL]  # no other URL was ever fetched
    assert _suppression("victim@example.com") is None and _suppression("other@example.com") is None


def test_sns_subscription_confirmation_is_recorded(sqlite_settings, client, signing) -> None:  # type: ignore[no-untyped-def]
    msg = _sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "m-1",
            "Token": "tok",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic",
            "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok",
            "Timestamp": "2026-11-30T01:00:00.000Z",
        },
        signing[0],
    )
    r = _post(client, msg)
    assert r.status_code == 200 and r.json() == {"recorded": "SubscriptionConfirmation"}
    with session_scope() as s:
        log = s.scalars(select(AuditLog).where(AuditLog.actor == "sns")).one()
        assert log.target == TOPIC and "ConfirmSubscription" in log.detail["subscribe_url"]


def test_sns_topic_allowlist(sqlite_settings, client, signing, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEWSLETTER_WEBHOOK_SNS_TOPIC_ARNS", "arn:aws:sns:us-east-1:1:other")
    assert (
        _post(client, _notification(_bounce("x", "a@example.com"), signing[0])).status_code == 403
    )


def test_postmark_basic_auth_bounce_and_complaint(any_db, client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rows = _sent(3)
    hard = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageStream": "outbound",
        "Email": rows[0][1],
        "Description": "The server was unable to deliver your message",
        "Details": "smtp;550 5.1.1 user unknown",
        "Metadata": {"delivery": rows[0][2]},
    }
    soft = {
        **hard,
        "ID": 2,
        "Type": "SoftBounce",
        "TypeCode": 4096,
        "Email": rows[1][1],
        "Metadata": {"delivery": rows[1][2]},
    }
    spam = {
        "RecordType": "SpamComplaint",
        "ID": 3,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Email": rows[2][1],
        "Metadata": {},
    }
    # Not configured: refuse everything.
    monkeypatch.delenv("NEWSLETTER_WEBHOOK_USER", raising=False)
    monkeypatch.delenv("NEWSLETTER_WEBHOOK_PASSWORD", raising=False)
    assert client.post("/webhooks/postmark", json=hard, auth=("pm", "s3cret")).status_code == 404
    monkeypatch.setenv("NEWSLETTER_WEBHOOK_USER", "pm")
    monkeypatch.setenv("NEWSLETTER_WEBHOOK_PASSWORD", "s3cret")
    assert client.post("/webhooks/postmark", json=hard).status_code == 401
    assert client.post("/webhooks/postmark", json=hard, auth=("pm", "wrong")).status_code == 401
    assert _suppression(rows[0][1]) is None
    r = client.post("/webhooks/postmark", json=hard, auth=("pm", "s3cret"))
    assert r.status_code == 200 and r.json()["results"][0] == {
        "kind": "hard",
        "delivery": rows[0][0],
        "applied": True,
        "note": "",
    }
    assert (
        client.post("/webhooks/postmark", json=soft, auth=("pm", "s3cret")).json()["results"][0][
            "kind"
        ]
        == "soft"
    )
    r = client.post("/webhooks/postmark", json=spam, auth=("pm", "s3cret"))
    assert r.json()["results"][0]["kind"] == "complaint" and r.json()["results"][0]["applied"]
    assert _suppression(rows[0][1]) == "hard_bounce"
    assert _suppression(rows[1][1]) is None
    assert _suppression(rows[2][1]) == "complaint"
    with session_scope() as s:
        assert s.get(Delivery, rows[0][0]).state == "bounced"  # type: ignore[union-attr]
        assert s.scalar(select(Event.kind).where(Event.uid == "postmark:3")) == "complaint"
