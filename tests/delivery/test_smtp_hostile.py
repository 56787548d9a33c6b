"""The SMTP client against relays that misbehave (findings of a hostile test of the
pipelined envelope, session 14): no stray or empty message, no bounce for a protocol
fault, no reply read out of step, every wait bounded, a usable connection after."""

from __future__ import annotations

import time

import pytest

from tests.delivery.hostile_relay import Relay, conn, msg
from tests.waiting import wait_for


def _send_one(relay: Relay, **kw):  # type: ignore[no-untyped-def]
    """One message to a@x on a new connection to ``relay`` (``kw``: the connection's
    settings), the relay stopped after; its outcome."""
    c = conn(relay, **kw)
    try:
        return c.send("s@x", "a@x", msg("a@x"))
    finally:
        c.close(force=True)
        relay.stop()


def _delivered(relay: Relay, count: int) -> list[list[str]]:
    wait_for(lambda: len(relay.delivered) >= count, timeout=5, what=f"{count} messages")
    return [d[2] for d in relay.delivered]


@pytest.mark.parametrize(
    "hooks",
    [
        {"mail": lambda c, n, a: b"OK sender fine\r\n" if n == 2 else None},  # unreadable
        {"rcpt": lambda c, n, a: b"252 2.1.5 will try\r\n" if a == "b@x" else None},
    ],
    ids=["unreadable MAIL reply", "RCPT 252"],
)
def test_an_envelope_ahead_that_is_not_accepted_delivers_no_empty_message(hooks) -> None:  # type: ignore[no-untyped-def]
    """The relay answered the envelope ahead oddly but still said 354 to DATA: the
    transaction is reset, never ended with a lone dot (an empty message to b@x)."""
    relay = Relay(hooks=hooks)
    c = conn(relay)
    try:
        assert c.send("s@x", "a@x", msg("a@x"), then=("s@x", "b@x")).state == "sent"
        assert c.send("s@x", "b@x", msg("b@x")).state == "deferred"
        assert c.send("s@x", "c@x", msg("c@x")).state == "sent"  # usable after
    finally:
        c.close(force=True)
        relay.stop()
    assert _delivered(relay, 2) == [["a@x"], ["c@x"]]


def test_a_bare_line_feed_before_a_dot_cannot_end_the_data() -> None:
    """SMTP smuggling: with a relay that ends DATA at ``<LF>.<CR><LF>``, a body holding
    one would deliver what follows as a second message; line ends are made CRLF and the
    dot doubled first."""
    relay = Relay(lenient_dot=True)
    body = (
        b"Subject: x\r\n\r\nhello\n.\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@x>\r\n"
        b"DATA\r\nSubject: smuggled\r\n\r\nowned\r\n"
    )
    c = conn(relay)
    try:
        assert c.send("s@x", "a@x", body).state == "sent"
    finally:
        c.close(force=True)
        relay.stop()
    assert _delivered(relay, 1) == [["a@x"]]  # (the client has closed: nothing more comes)
    assert b"owned" in relay.delivered[0][3]  # the "second message" stayed text of the first


@pytest.mark.parametrize(
    "hooks",
    [
        {"greeting": lambda c, n, a: b"220 " + b"x" * 10_000 + b"\r\n"},
        {"ehlo": lambda c, n, a: b"250 " + b"x" * 10_000 + b"\r\n"},
        {"greeting": lambda c, n, a: b"554 5.7.1 go away\r\n"},
    ],
    ids=["long greeting", "long EHLO reply", "554 greeting"],
)
def test_a_relay_that_refuses_the_connection_bounces_nobody(hooks) -> None:  # type: ignore[no-untyped-def]
    out = _send_one(Relay(hooks=hooks))
    assert out.state == "deferred" and not out.maybe_delivered
    assert out.reply.startswith("connection refused")


def test_a_refused_authentication_bounces_nobody() -> None:
    relay = Relay(
        hooks={"auth": lambda c, n, a: b"535 5.7.8 bad credentials\r\n"}, extra_ehlo=[b"AUTH PLAIN"]
    )
    out = _send_one(relay, username="u", password="p")
    assert (out.state, out.code) == ("deferred", 535)


@pytest.mark.parametrize("after", ["CLOSE", "HANG"])
def test_a_refusal_of_the_body_stands_when_the_reset_after_it_fails(after: str) -> None:
    relay = Relay(
        hooks={"dot": lambda c, n, a: b"552 5.3.4 too big\r\n", "rset": lambda c, n, a: after}
    )
    out = _send_one(relay, timeout=1)
    assert (out.state, out.code, out.maybe_delivered) == ("bounced", 552, False)


def test_a_reply_trickling_in_is_bounded_by_its_deadline() -> None:
    """The final dot's reply comes a byte every 0.3 s (a timeout per read would wait 5 s
    and more): the whole reply gets ``data_timeout``."""

    def trickle(c, n, a):  # type: ignore[no-untyped-def]
        for byte in b"250 2.0.0 queued\r\n":
            c.sock.sendall(bytes([byte]))
            time.sleep(0.3)
        return b""

    began = time.monotonic()
    out = _send_one(Relay(hooks={"dot": trickle}), timeout=2, data_timeout=2)
    took = time.monotonic() - began
    assert out.timed_out and out.maybe_delivered and took < 4


def test_an_extra_reply_is_never_read_as_the_next_message_s() -> None:
    """The relay answers one final dot twice: the connection is out of step, so it is
    dropped; the next message's refusal is its own (554), not the stray 250."""
    relay = Relay(
        pipelining=False,
        hooks={
            "dot": lambda c, n, a: b"250 ok\r\n250 extra\r\n" if n == 1 else b"554 5.7.1 spam\r\n"
        },
    )
    c = conn(relay)
    try:
        assert c.send("s@x", "a@x", msg("a@x")).state == "sent"
        out = c.send("s@x", "b@x", msg("b@x"))
    finally:
        c.close(force=True)
        relay.stop()
    assert (out.state, out.code) == ("bounced", 554)
    assert _delivered(relay, 1) == [["a@x"]]


def test_an_unreadable_reply_to_the_final_dot_counts_as_maybe_delivered() -> None:
    out = _send_one(Relay(hooks={"dot": lambda c, n, a: b"OK queued\r\n"}))
    assert out.state == "deferred" and out.maybe_delivered


def test_a_failing_check_before_the_body_sends_nothing_and_leaves_a_usable_link() -> None:
    relay = Relay()

    def broken() -> bool:
        raise RuntimeError("lease database down")

    c = conn(relay)
    try:
        assert c.send("s@x", "a@x", msg("a@x"), then=("s@x", "b@x")).state == "sent"
        out = c.send("s@x", "b@x", msg("b@x"), proceed=broken)
        assert (out.state, out.abandoned) == ("deferred", True)
        assert c.send("s@x", "c@x", msg("c@x")).state == "sent"
    finally:
        c.close(force=True)
        relay.stop()
    assert _delivered(relay, 2) == [["a@x"], ["c@x"]]


def test_multi_line_replies_are_read_whole() -> None:
    """A reply may span lines (``250-…`` then ``250 …``), in the envelope and to the dot."""
    relay = Relay(
        hooks={
            "mail": lambda c, n, a: b"250-sender\r\n250 ok\r\n",
            "dot": lambda c, n, a: b"250-queued\r\n250 as X1\r\n",
        }
    )
    assert _send_one(relay, timeout=5).state == "sent"


@pytest.mark.parametrize(
    "reply",
    [b"250 " + b"x" * 9000 + b"\r\n", "CLOSE"],  # past smtplib's limit; no reply at all
    ids=["a line too long", "the link closed"],
)
def test_a_bad_reply_to_the_final_dot_is_not_sent(reply: object) -> None:
    out = _send_one(Relay(hooks={"dot": lambda c, n, a: reply}), timeout=5)
    assert (out.state, out.code) == ("deferred", None)
    assert out.maybe_delivered  # the body went out: the relay may have it


def _trickled(text: bytes):  # type: ignore[no-untyped-def]
    """A hook that answers ``text`` a byte every 0.2 s."""

    def hook(c, n, a):  # type: ignore[no-untyped-def]
        for byte in text:
            c.sock.sendall(bytes([byte]))
            time.sleep(0.2)
        return b""

    return hook


@pytest.mark.parametrize(
    ("event", "reply", "phase"),
    [
        ("greeting", b"220 relay.example ESMTP ready for you\r\n", "greeting"),
        ("ehlo", b"250-relay.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n", "ehlo"),
    ],
)
def test_a_setup_reply_trickling_in_is_bounded_by_its_deadline(
    event: str, reply: bytes, phase: str
) -> None:
    """smtplib reads the greeting and the EHLO reply line by line, a timeout per read: a
    relay that trickles them held a connection for as long as it liked. Each whole reply
    now has ``timeout``; the outcome is a deferral marked timed out, naming the phase."""
    began = time.monotonic()
    out = _send_one(Relay(hooks={event: _trickled(reply)}), timeout=1)
    took = time.monotonic() - began
    assert out.state == "deferred" and out.timed_out and not out.maybe_delivered
    assert phase in out.reply and took < 2.5, (out, took)


def test_a_reset_trickling_in_does_not_hold_the_sender() -> None:
    """A refusal's RSET answered a byte at a time: the refusal stands, the link is dropped
    within the deadline, and the next message goes out on a new connection."""
    relay = Relay(
        hooks={
            "rcpt": lambda c, n, a: b"550 5.1.1 no such user\r\n" if a == "a@x" else None,
            "rset": _trickled(b"250 2.0.0 reset, after a long pause to think\r\n"),
        }
    )
    c = conn(relay, timeout=1)
    try:
        began = time.monotonic()
        first = c.send("s@x", "a@x", msg("a@x"))
        took = time.monotonic() - began
        second = c.send("s@x", "b@x", msg("b@x"))
    finally:
        c.close(force=True)
        relay.stop()
    assert (first.state, first.code) == ("bounced", 550) and took < 2.5, (first, took)
    assert second.state == "sent"


def test_a_greeting_has_timeout_however_long_the_connect_may_take() -> None:
    """The TCP connect has ``connect_timeout``; the greeting, once connected, ``timeout``
    (it had the two together)."""
    relay = Relay(hooks={"greeting": _trickled(b"220 relay.example ESMTP ready for you\r\n")})
    began = time.monotonic()
    out = _send_one(relay, timeout=1, connect_timeout=5)
    took = time.monotonic() - began
    assert out.timed_out and "greeting" in out.reply and took < 2.5, (out, took)


@pytest.mark.parametrize("event", ["mail", "rcpt", "data"])
def test_without_pipelining_each_reply_is_bounded_by_its_deadline(event: str) -> None:
    """A relay without PIPELINING gets one command at a time, each reply read by smtplib:
    a reply trickled in is bounded by ``timeout`` as in the pipelined path."""
    default = {"mail": b"250 2.1.0 sender fine\r\n", "rcpt": b"250 2.1.5 recipient fine\r\n",
               "data": b"354 go ahead, end with a dot\r\n"}  # fmt: skip
    relay = Relay(pipelining=False, hooks={event: _trickled(default[event])})
    began = time.monotonic()
    out = _send_one(relay, timeout=1)
    took = time.monotonic() - began
    assert out.state == "deferred" and out.timed_out and not out.maybe_delivered, out
    assert event in out.reply and took < 2.5 and not relay.delivered, (out, took)


@pytest.mark.parametrize(
    "hooks",
    [
        {"greeting": lambda c, n, a: b"554 5.3.2 go away\r\n"},
        {"ehlo": lambda c, n, a: "RST"},
    ],
)
def test_a_refused_setup_closes_its_socket(hooks) -> None:  # type: ignore[no-untyped-def]
    """A connection whose setup was refused is closed at once, not left to the garbage
    collector (a ResourceWarning per refusal, and a socket held open meanwhile)."""
    import gc
    import warnings

    relay = Relay(hooks=hooks)
    gc.collect()  # (earlier tests' garbage is not this test's)
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", ResourceWarning)
            for _ in range(5):
                c = conn(relay, timeout=1)
                assert c.send("s@x", "a@x", msg("a@x")).state == "deferred"
                c.close(force=True)
                del c
            gc.collect()
    finally:
        relay.stop()
    ours = f"'127.0.0.1', {relay.port})"  # an unclosed socket names its peer
    leaked = [w for w in seen if issubclass(w.category, ResourceWarning)]
    assert not [w for w in leaked if ours in str(w.message)], leaked
