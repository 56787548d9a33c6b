"""The SMTP transaction against a real server: dot-stuffing and reply classification."""

from __future__ import annotations

import pytest

from newsletter.delivery.smtp import SmtpConnection


def test_lines_starting_with_dots_arrive_intact(smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    body = (b"Subject: dots\r\nTo: a@example.com\r\n\r\n.leading dot\r\n..two dots\r\n"
            b"middle . dot\r\n.\r\nlast line without CRLF")
    conn = SmtpConnection("127.0.0.1", port)
    try:
        out = conn.send("bounces@example.org", "a@example.com", body)
        assert out.state == "sent"
        again = conn.send("bounces@example.org", "b@example.com", body)  # same connection
        assert again.state == "sent"
    finally:
        conn.close()
    received = sink.messages[0][2].replace(b"\r\n", b"\n")
    assert received.rstrip(b"\n") == body.replace(b"\r\n", b"\n")
    assert [m[1] for m in sink.messages] == [["a@example.com"], ["b@example.com"]]


@pytest.mark.parametrize("pipelining", [True, False])
def test_replies_are_classified(smtp_sink, pipelining: bool) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    sink.pipelining = pipelining
    sink.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    sink.rcpt_replies["later@example.com"] = "451 4.3.0 try again"
    conn = SmtpConnection("127.0.0.1", port)
    try:
        assert conn.send("b@example.org", "gone@example.com", b"X: y\r\n\r\nz\r\n").state == "bounced"
        assert conn.send("b@example.org", "later@example.com", b"X: y\r\n\r\nz\r\n").state == "deferred"
        assert conn.send("b@example.org", "ok@example.com", b"X: y\r\n\r\nz\r\n").state == "sent"
        assert conn.pipelining is pipelining
    finally:
        conn.close()
    assert len(sink.messages) == 1
