"""System mail (confirmation, test send, alert) is DKIM-signed and carries a bounce
address that `bounces serve` accepts; a DSN about a confirmation suppresses the
address; configured feedback-loop addresses are accepted too."""

from __future__ import annotations

import smtplib
from pathlib import Path

import dkim
import pytest
from sqlalchemy import select

from newsletter.audience.service import get_or_create_list
from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.bounces import start_bounce_server
from newsletter.delivery.dkim_keys import dns_txt_record, generate_rsa_key
from newsletter.delivery.system_mail import subscribe
from newsletter.devtools.sink import free_port
from newsletter.models import Suppression
from tests.delivery.test_bounces import dsn


@pytest.fixture
def signed(any_db, smtp_sink, tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    pem = generate_rsa_key(1024)
    key = tmp_path / "dkim.pem"
    key.write_bytes(pem)
    monkeypatch.setenv("NEWSLETTER_DKIM_DOMAIN", "example.org")
    monkeypatch.setenv("NEWSLETTER_DKIM_SELECTOR", "sys1")
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY_FILE", str(key))
    settings = any_db.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "bounce_domain": "example.org",
            "feedback_addresses": ["fbl@example.org"],
        }
    )
    reset_settings(settings)
    records = {"sys1._domainkey.example.org": dns_txt_record(pem)}

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        found = records.get(name.decode().rstrip("."))
        return found.encode() if found else None

    return sink, lookup


def _deliver(port: int, rcpt: str, data: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.ehlo()
        try:
            smtp.sendmail("", [rcpt], data)
        except smtplib.SMTPRecipientsRefused as exc:
            return exc.recipients[rcpt]
    return 250, b"ok"


def test_confirmation_mail_is_signed_and_its_bounce_suppresses(signed) -> None:  # type: ignore[no-untyped-def]
    sink, lookup = signed
    with session_scope() as s:
        list_id = get_or_create_list(s, "周报订阅").id
    subscribe("gone@example.com", list_id)
    assert len(sink.messages) == 1
    mail_from, rcpts, data = sink.messages[0]
    assert rcpts == ["gone@example.com"]
    assert dkim.verify(data, dnsfunc=lookup)
    assert mail_from.startswith("bounces+s") and mail_from.endswith("@example.org")
    port = free_port()
    ctrl, handler = start_bounce_server(port=port)
    try:
        token = mail_from.split("+", 1)[1].split("@")[0]
        report = dsn(token, "gone@example.com", 0, action="failed", status="5.1.1",
                     diag="550 5.1.1 user unknown")  # fmt: skip
        assert _deliver(port, mail_from, report)[0] == 250
        # a forged system token is refused at RCPT
        code, _ = _deliver(port, "bounces+s1.AAAAAAAAAAAAAAAA@example.org", report)
        assert code == 550
        # a configured feedback-loop address is accepted
        assert _deliver(port, "fbl@example.org", report)[0] == 250
    finally:
        ctrl.stop()
    with session_scope() as s:
        row = s.scalars(select(Suppression).where(Suppression.email == "gone@example.com")).one()
        assert row.reason == "hard_bounce" and "system mail" in (row.note or "")
    assert handler.results[0].applied


def test_test_send_and_alerts_use_a_system_bounce_address(signed) -> None:  # type: ignore[no-untyped-def]
    from newsletter.core.config import get_settings
    from newsletter.delivery.alerts import notify

    sink, lookup = signed
    reset_settings(get_settings().model_copy(update={"ops_emails": ["ops@example.org"]}))
    with session_scope() as s:
        notify(s, "failed", "send 9 could not start", "no audience list / 无法开始")
    mail_from, rcpts, data = sink.messages[-1]
    assert rcpts == ["ops@example.org"] and mail_from.startswith("bounces+s")
    assert dkim.verify(data, dnsfunc=lookup)
