"""DSNs (RFC 3464), ARF complaints (RFC 5965) and non-standard bounces, applied to the ledger."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.core.db import session_scope
from newsletter.core.safety.signing import delivery_token, unsubscribe_token
from newsletter.delivery.bounces import (
    BounceSMTPHandler,
    parse_report,
    process_dsn,
    process_maildir,
)
from newsletter.delivery.run import drive_inline
from newsletter.devtools.sink import free_port
from newsletter.models import Delivery, Event, Subscriber, Subscription, Suppression
from tests.factories import seed


def _sent(n: int = 3) -> tuple[dict[str, int], list[tuple[int, str, str]]]:
    """Seed, send through the maildir outbox; (ids, [(delivery id, email, token)])."""
    ids = seed(n)
    assert drive_inline(ids["send"]) == "finished"
    with session_scope() as s:
        rows = s.execute(
            select(Delivery.id, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .order_by(Delivery.id)
        ).all()
    return ids, [(d, e, delivery_token(d)) for d, e in rows]


ORIGINAL = (
    "Return-Path: <bounces+{token}@example.org>\r\n"
    "From: =?utf-8?b?5pS/562W5ZGo5oql?= <news@example.org>\r\n"
    "To: {rcpt}\r\n"
    "Subject: =?utf-8?b?6JCl5ZWG546v5aKD5pS/562W5ZGo5oql?=\r\n"
    "Message-ID: <{did}.abcdef@example.org>\r\n"
)


def dsn(
    token: str, rcpt: str, did: int, *, action: str, status: str, diag: str, to_verp: bool = True
) -> bytes:
    """A DSN as Postfix writes it (RFC 3464 multipart/report)."""
    to = f"bounces+{token}@example.org" if to_verp else "postmaster@example.org"
    return (
        f"Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n"
        f"To: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BND"\r\n\r\n'
        "--BND\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mx.example.com.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\nbe delivered.\r\n\r\n"
        "--BND\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\nArrival-Date: Mon, 30 Nov 2026 09:00:01 +0800\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nOriginal-Recipient: rfc822;{rcpt}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; mx1.example.com\r\n"
        f"Diagnostic-Code: smtp; {diag}\r\n\r\n"
        "--BND\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        + ORIGINAL.format(token=token, rcpt=rcpt, did=did)
        + "\r\n--BND--\r\n"
    ).encode()


def arf(token: str, rcpt: str, did: int, feedback_type: str = "abuse") -> bytes:
    """An ARF report (RFC 5965) as a feedback loop sends it, original message attached."""
    return (
        "From: fbl@isp.example\r\nTo: fbl@example.org\r\nSubject: FW: complaint\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"\r\n\r\n'
        "--ARF\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is an email abuse report.\r\n\r\n"
        "--ARF\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: SomeISP-FBL/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <bounces+{token}@example.org>\r\nOriginal-Rcpt-To: <{rcpt}>\r\n"
        "Arrival-Date: Mon, 30 Nov 2026 09:00:01 +0800\r\nReported-Domain: example.org\r\n\r\n"
        "--ARF\r\nContent-Type: message/rfc822\r\n\r\n"
        + ORIGINAL.format(token=token, rcpt=rcpt, did=did)
        + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n读者，您好！\r\n\r\n--ARF--\r\n"
    ).encode()


def qmail_bounce(token: str, rcpt: str) -> bytes:
    """qmail's QSBMF: no multipart/report; only flufl.bounce understands it."""
    return (
        f"Return-Path: <>\r\nFrom: MAILER-DAEMON@qmail.example.net\r\n"
        f"To: bounces+{token}@example.org\r\nSubject: failure notice\r\n\r\n"
        "Hi. This is the qmail-send program at qmail.example.net.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        f"<{rcpt}>:\r\n192.0.2.1 does not like recipient.\r\n"
        "Remote host said: 550 5.1.1 user unknown\r\nGiving up on 192.0.2.1.\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        f"Return-Path: <bounces+{token}@example.org>\r\n"
    ).encode()


def exim_bounce(token: str, rcpt: str) -> bytes:
    """Old Exim format: plain text with X-Failed-Recipients."""
    return (
        f"From: Mail Delivery System <Mailer-Daemon@exim.example.net>\r\n"
        f"To: bounces+{token}@example.org\r\nX-Failed-Recipients: {rcpt}\r\n"
        "Subject: Mail delivery failed: returning message to sender\r\n\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        f"recipients. This is a permanent error. The following address(es) failed:\r\n\r\n  {rcpt}\r\n"
        "    SMTP error from remote mail server after RCPT TO: 550 5.1.1 no such user\r\n"
    ).encode()


def _state(did: int) -> tuple[str, str | None]:
    with session_scope() as s:
        d = s.get(Delivery, did)
        assert d is not None
        return d.state, d.last_reply


def _suppressed(email: str) -> str | None:
    with session_scope() as s:
        return s.scalar(select(Suppression.reason).where(Suppression.email == email))


def test_hard_bounce_dsn_bounces_and_suppresses(any_db) -> None:  # type: ignore[no-untyped-def]
    _ids, rows = _sent(3)
    did, addr, token = rows[1]
    r = process_dsn(
        dsn(
            token,
            addr,
            did,
            action="failed",
            status="5.1.1",
            diag="550 5.1.1 <x>: Recipient address rejected: User unknown",
        )
    )
    assert (r.kind, r.delivery_id, r.status, r.applied, r.source) == (
        "hard",
        did,
        "5.1.1",
        True,
        "dsn",
    )
    state, reply = _state(did)
    assert state == "bounced" and reply is not None and "5.1.1" in reply
    assert _suppressed(addr) == "hard_bounce"
    assert _state(rows[0][0])[0] == "sent" and _suppressed(rows[0][1]) is None
    # Idempotent: the same DSN again changes nothing and does not fail.
    assert process_dsn(dsn(token, addr, did, action="failed", status="5.1.1", diag="x")).applied


def test_soft_bounce_records_only(any_db) -> None:  # type: ignore[no-untyped-def]
    _ids, rows = _sent(2)
    did, addr, token = rows[0]
    r = process_dsn(
        dsn(token, addr, did, action="delayed", status="4.2.2", diag="452 4.2.2 mailbox full")
    )
    assert r.kind == "soft" and r.applied
    state, reply = _state(did)
    assert state == "sent" and reply is not None and "4.2.2" in reply
    assert _suppressed(addr) is None


def test_token_found_in_returned_headers_when_to_is_not_verp(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    _ids, rows = _sent(2)
    did, addr, token = rows[1]
    raw = dsn(token, addr, did, action="failed", status="5.2.1", diag="550 disabled", to_verp=False)
    r = parse_report(raw)
    assert r.delivery_id == did and r.kind == "hard"


def test_forged_token_is_not_applied(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    _ids, rows = _sent(2)
    did, addr, token = rows[0]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    r = process_dsn(dsn(forged, addr, did, action="failed", status="5.1.1", diag="x"))
    assert r.kind == "hard" and not r.applied and r.delivery_id is None
    assert _state(did)[0] == "sent" and _suppressed(addr) is None


def test_arf_complaint_suppresses_and_records_event(any_db) -> None:  # type: ignore[no-untyped-def]
    ids, rows = _sent(3)
    did, addr, token = rows[2]
    r = process_dsn(arf(token, addr, did))
    assert (r.kind, r.delivery_id, r.source, r.applied) == ("complaint", did, "arf", True)
    assert _suppressed(addr) == "complaint"
    process_dsn(arf(token, addr, did))  # a duplicate report is counted once
    with session_scope() as s:
        events = s.scalars(select(Event).where(Event.kind == "complaint")).all()
        assert [(e.delivery_id, e.send_id) for e in events] == [(did, ids["send"])]


def test_arf_other_feedback_types_are_not_complaints(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    _ids, rows = _sent(1)
    did, addr, token = rows[0]
    r = process_dsn(arf(token, addr, did, feedback_type="not-spam"))
    assert r.kind == "unknown" and not r.applied and _suppressed(addr) is None


@pytest.mark.parametrize("fmt", ["qmail", "exim"])
def test_non_standard_bounces_via_flufl(sqlite_settings, fmt: str) -> None:  # type: ignore[no-untyped-def]
    _ids, rows = _sent(2)
    did, addr, token = rows[0]
    raw = qmail_bounce(token, addr) if fmt == "qmail" else exim_bounce(token, addr)
    r = process_dsn(raw)
    assert (r.kind, r.source, r.delivery_id, r.applied) == ("hard", "flufl", did, True)
    assert addr in r.failed
    assert _state(did)[0] == "bounced" and _suppressed(addr) == "hard_bounce"


def test_unrelated_mail_is_ignored(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    r = process_dsn(b"From: a@b.example\r\nTo: bounces@example.org\r\nSubject: hello\r\n\r\nhi\r\n")
    assert r.kind == "unknown" and not r.applied


def test_maildir_reader(sqlite_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _ids, rows = _sent(3)
    md = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "new" / "1.a.host").write_bytes(
        dsn(rows[0][2], rows[0][1], rows[0][0], action="failed", status="5.1.1", diag="x")
    )
    (md / "new" / "2.b.host").write_bytes(arf(rows[1][2], rows[1][1], rows[1][0]))
    results = process_maildir(md)
    assert [r.kind for r in results] == ["hard", "complaint"]
    assert not list((md / "new").iterdir())
    assert sorted(p.name for p in (md / "cur").iterdir()) == ["1.a.host:2,S", "2.b.host:2,S"]
    assert process_maildir(md) == []  # already seen


def test_smtp_endpoint_takes_bounces_and_mailto_unsubscribes(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller

    ids, rows = _sent(3)
    handler = BounceSMTPHandler(domain="example.org")
    port = free_port()
    ctrl = Controller(handler, hostname="127.0.0.1", port=port, decode_data=False)
    ctrl.start()
    try:
        did, addr, token = rows[0]
        with session_scope() as s:
            sid = s.scalar(select(Subscriber.id).where(Subscriber.email == rows[1][1]))
        assert sid is not None
        unsub = unsubscribe_token(sid, ids["list"])
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail(
                "",
                [f"bounces+{token}@example.org"],
                dsn(token, addr, did, action="failed", status="5.1.1", diag="550 no"),
            )
            smtp.sendmail(
                "reader1@example.com",
                [f"unsubscribe+{unsub}@example.org"],
                b"From: reader1@example.com\r\nSubject: unsubscribe\r\n\r\n\r\n",
            )
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                smtp.sendmail(
                    "x@example.com", ["postmaster@example.org"], b"Subject: x\r\n\r\nx\r\n"
                )
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                smtp.sendmail(
                    "x@example.com",
                    [f"unsubscribe+{unsub[:-2]}zz@example.org"],
                    b"Subject: x\r\n\r\nx\r\n",
                )
    finally:
        ctrl.stop()
    assert _state(did)[0] == "bounced" and _suppressed(addr) == "hard_bounce"
    assert handler.unsubscribed == [sid]
    with session_scope() as s:
        st = s.scalar(select(Subscription.status).where(Subscription.subscriber_id == sid))
    assert st == "unsubscribed"
