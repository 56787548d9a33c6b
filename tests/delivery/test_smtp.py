"""The SMTP transaction against a real server: dot-stuffing and reply classification."""

from __future__ import annotations

import pytest

from newsletter.delivery.smtp import SmtpConnection


def test_lines_starting_with_dots_arrive_intact(smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    body = (
        b"Subject: dots\r\nTo: a@example.com\r\n\r\n.leading dot\r\n..two dots\r\n"
        b"middle . dot\r\n.\r\nlast line without CRLF"
    )
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
        assert (
            conn.send("b@example.org", "gone@example.com", b"X: y\r\n\r\nz\r\n").state == "bounced"
        )
        assert (
            conn.send("b@example.org", "later@example.com", b"X: y\r\n\r\nz\r\n").state
            == "deferred"
        )
        assert conn.send("b@example.org", "ok@example.com", b"X: y\r\n\r\nz\r\n").state == "sent"
        assert conn.pipelining is pipelining
    finally:
        conn.close()
    assert len(sink.messages) == 1


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_withdrawn_transaction_never_reaches_the_relay(smtp_sink, pipelining: bool) -> None:  # type: ignore[no-untyped-def]
    """``proceed`` is asked once the relay waits for the body; a no drops the connection
    before the final dot, so the relay discards the transaction (fencing at the last
    moment: a lease that ran out while the relay held its replies back sends nothing)."""
    port, sink = smtp_sink
    sink.pipelining = pipelining
    asked: list[int] = []

    def no() -> bool:
        asked.append(len(sink.messages))
        return False

    conn = SmtpConnection("127.0.0.1", port)
    try:
        out = conn.send("b@example.org", "a@example.com", b"X: y\r\n\r\nfirst\r\n", proceed=no)
        assert (out.state, out.abandoned, out.maybe_delivered) == ("deferred", True, False)
        assert asked == [0]
        # the next message opens a new connection and is the only one the relay keeps
        out = conn.send(
            "b@example.org", "b@example.com", b"X: y\r\n\r\nsecond\r\n", proceed=lambda: True
        )
        assert (out.state, out.abandoned) == ("sent", False)
    finally:
        conn.close()
    assert [m[1] for m in sink.messages] == [["b@example.com"]]
    assert b"first" not in b"".join(m[2] for m in sink.messages)


def test_a_reply_lost_after_the_final_dot_is_counted_as_maybe_delivered() -> None:
    """The relay took the whole message and the link broke before its reply: the
    outcome says the message may have been delivered (the engine counts the retry at
    risk); a refused connection says nothing of the kind."""
    import socket
    import threading

    from newsletter.delivery.smtp import SmtpConnection

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    got = {}

    def relay() -> None:
        conn, _ = srv.accept()
        f = conn.makefile("rwb")
        f.write(b"220 relay ready\r\n")
        f.flush()
        data = False
        while True:
            line = f.readline()
            if not line:
                break
            if data:
                if line == b".\r\n":
                    got["body"] = True
                    conn.close()  # took it, and the link breaks before "250"
                    return
                continue
            cmd = line[:4].upper()
            if cmd in (b"EHLO", b"HELO"):
                f.write(b"250 relay\r\n")
            elif cmd == b"DATA":
                f.write(b"354 go on\r\n")
                data = True
            else:
                f.write(b"250 ok\r\n")
            f.flush()

    t = threading.Thread(target=relay, daemon=True)
    t.start()
    conn = SmtpConnection("127.0.0.1", port, timeout=5)
    out = conn.send("bounces@example.org", "reader@example.com", b"Subject: x\r\n\r\nbody\r\n")
    t.join(5)
    srv.close()
    assert got.get("body") and out.state == "deferred" and out.maybe_delivered, out
    refused = SmtpConnection("127.0.0.1", port, timeout=2).send(
        "bounces@example.org", "reader@example.com", b"Subject: x\r\n\r\nbody\r\n"
    )
    assert refused.state == "deferred" and not refused.maybe_delivered


def test_gather_writes_send_every_byte_in_order_through_partial_writes() -> None:
    """``_send_parts`` writes a body and the final dot without joining them; a small send
    buffer makes ``sendmsg`` write part of a part, and every byte still arrives once, in
    order. A closed peer is the same ``SMTPServerDisconnected`` that ``smtp.send`` raises."""
    import os
    import smtplib
    import socket
    import threading

    from newsletter.delivery.wire import send_parts as _send_parts

    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    body = os.urandom(300_000)
    got = bytearray()

    def read() -> None:
        while chunk := b.recv(7000):
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    smtp = smtplib.SMTP()
    smtp.sock = a
    _send_parts(smtp, (body, b"", b".\r\n"))
    a.shutdown(socket.SHUT_WR)
    reader.join(30)
    assert bytes(got) == body + b".\r\n"
    b.close()
    c, d = socket.socketpair()
    d.close()
    smtp.sock = c
    with pytest.raises(smtplib.SMTPServerDisconnected):
        _send_parts(smtp, (body, b".\r\n"))
    assert smtp.sock is None  # closed, as smtp.send closes it


def _body(word: str) -> bytes:
    return f"X: y\r\n\r\n{word}\r\n".encode()


def test_the_next_envelope_rides_behind_the_final_dot(smtp_sink) -> None:  # type: ignore[no-untyped-def]
    """``then`` writes the next message's MAIL, RCPT and DATA behind this one's final dot;
    the next ``send`` for that recipient reads their replies and writes only the body.
    Every message arrives once, to its own recipient, on one connection."""
    port, sink = smtp_sink
    rcpts = [f"r{i}@example.com" for i in range(6)]
    conn = SmtpConnection("127.0.0.1", port)
    try:
        for i, rcpt in enumerate(rcpts):
            then = ("b@example.org", rcpts[i + 1]) if i + 1 < len(rcpts) else None
            out = conn.send("b@example.org", rcpt, _body(f"m{i}"), then=then)
            assert out.state == "sent", out
            assert conn._pending == then  # the relay now waits for the next body
        sock = conn._smtp.sock if conn._smtp is not None else None
    finally:
        conn.close()
    assert sock is not None
    assert [m[1] for m in sink.messages] == [[r] for r in rcpts]
    assert [m[2].split(b"\r\n\r\n")[1].strip() for m in sink.messages] == [
        f"m{i}".encode() for i in range(6)
    ]


@pytest.mark.parametrize("how", ["another recipient", "withdrawn", "closed"])
def test_an_envelope_sent_ahead_and_not_followed_delivers_nothing(smtp_sink, how: str) -> None:  # type: ignore[no-untyped-def]
    """When the message announced ahead does not follow (the caller sends another one,
    ``proceed`` says no, or the connection is closed: a pause, a lost lease, a relay
    taken out), the connection is reset: the relay drops the open transaction and never
    receives an empty or stray message for the announced recipient."""
    port, sink = smtp_sink
    conn = SmtpConnection("127.0.0.1", port)
    try:
        out = conn.send(
            "b@example.org",
            "a@example.com",
            _body("a"),
            then=("b@example.org", "ahead@example.com"),
        )
        assert out.state == "sent"
        first_sock = conn._smtp.sock if conn._smtp is not None else None
        if how == "another recipient":
            out = conn.send("b@example.org", "c@example.com", _body("c"))
            assert out.state == "sent"
            assert conn._smtp is not None and conn._smtp.sock is not first_sock  # a new one
        elif how == "withdrawn":
            out = conn.send(
                "b@example.org", "ahead@example.com", _body("ahead"), proceed=lambda: False
            )
            assert (out.state, out.abandoned) == ("deferred", True)
        else:
            conn.close()
            assert conn._pending is None
    finally:
        conn.close()
    wanted = [["a@example.com"]] + ([["c@example.com"]] if how == "another recipient" else [])
    assert [m[1] for m in sink.messages] == wanted
    assert all(b"ahead" not in m[2] for m in sink.messages)


def test_a_refused_message_with_an_envelope_ahead_resets_instead_of_rset(smtp_sink) -> None:  # type: ignore[no-untyped-def]
    """A message refused at its final dot while the next envelope is already on the
    wire: a RSET would be read as the next message's text, so the connection is reset
    and the next message goes on a new one, intact."""
    port, sink = smtp_sink
    sink.on_data = lambda env: "552 5.3.4 too big" if "big@example.com" in env.rcpt_tos else None
    conn = SmtpConnection("127.0.0.1", port)
    try:
        out = conn.send(
            "b@example.org",
            "big@example.com",
            _body("big"),
            then=("b@example.org", "n@example.com"),
        )
        assert (out.state, out.code) == ("bounced", 552)
        assert conn._pending is None and conn._smtp is None
        out = conn.send("b@example.org", "n@example.com", _body("next"))
        assert out.state == "sent"
    finally:
        conn.close()
    assert [(m[1], m[2].split(b"\r\n\r\n")[1].strip()) for m in sink.messages] == [
        (["n@example.com"], b"next")
    ]
