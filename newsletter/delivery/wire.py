"""Bytes on an SMTP connection: gather writes and replies parsed straight off the socket.

``SmtpConnection`` (``smtp``) keeps smtplib for the connection's setup (greeting, EHLO,
STARTTLS, AUTH) and for RSET and QUIT; the transaction's hot path writes and reads here.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = [
    "MAX_REPLY_LINE",
    "client_tls",
    "login",
    "dot_stuffed",
    "envelope",
    "read_replies",
    "send_parts",
    "timed_out",
    "within",
]

#: the longest reply line accepted (smtplib's limit; RFC 5321 §4.5.3.1.5 asks for 512)
MAX_REPLY_LINE = 8192


def send_parts(smtp: smtplib.SMTP, parts: tuple[bytes, ...]) -> None:
    """``smtp.send(b"".join(parts))`` without the join: on a plain socket the parts go out
    by gather writes (``sendmsg``), so a 170 KB body is not copied once more to append
    the final dot. TLS sockets have no ``sendmsg``; they get the join. Failures are
    raised as ``smtp.send`` raises them (the socket error kept as the context)."""
    sock = smtp.sock
    if sock is None or isinstance(sock, ssl.SSLSocket) or not hasattr(sock, "sendmsg"):
        smtp.send(b"".join(parts))
        return
    views = [memoryview(p) for p in parts if p]
    try:
        while views:
            sent = sock.sendmsg(views)
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            if views and sent:
                views[0] = views[0][sent:]
    except OSError as exc:
        smtp.close()
        raise smtplib.SMTPServerDisconnected("Server not connected") from exc


def client_tls(verify: bool = True, ca_file: str = "") -> ssl.SSLContext:
    """The TLS context for a relay (STARTTLS or implicit TLS): the relay's certificate is
    verified against the system's authorities, or ``ca_file`` (a private CA, or the
    relay's own self-signed certificate), and must name the host the relay was
    configured with. smtplib's own default verifies nothing, so anyone on the path could
    have read the relay's password and every message. ``verify=False`` is the explicit
    opt-out. One context per setting and version of the CA file, shared by every
    connection (a CA file replaced at the same path applies to the next connection)."""
    stamp = None
    if ca_file:
        st = os.stat(ca_file)  # (missing: FileNotFoundError, a failed connection)
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    return _tls(verify, ca_file, stamp)


@functools.lru_cache(maxsize=16)
def _tls(verify: bool, ca_file: str, _stamp: object) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file or None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH as smtplib does, and, for a name or password that is not ASCII (smtplib
    encodes both as ASCII and raised UnicodeEncodeError out of every send), AUTH PLAIN
    with UTF-8 (RFC 4616) in one command. A refusal raises SMTPAuthenticationError."""
    if (username + password).isascii():
        smtp.login(username, password)
        return
    smtp.ehlo_or_helo_if_needed()
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, resp = smtp.docmd("AUTH", "PLAIN " + token)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, resp)


def envelope(envelope_from: str, rcpt: str, opts: list[str]) -> bytes:
    """MAIL, RCPT and DATA for one recipient, as one pipelined write."""
    esmtp = "".join(" " + o for o in opts)
    return f"MAIL FROM:<{envelope_from}>{esmtp}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode()


def read_replies(
    sock: socket.socket | None, buf: bytearray, n: int, deadline: float | None = None
) -> list[tuple[int, bytes]]:
    """The next ``n`` replies, read straight off ``sock`` into ``buf`` (which keeps what
    was read and not parsed yet): the dot's reply and the next envelope's three usually
    arrive in one segment and are parsed from one read (smtplib reads them line by line
    through a file object). What the server sends is never more than what was asked, so
    nothing is left over for smtplib's own reader, which the connection's setup and RSET
    use. A reply that cannot be read (the link closed, a line longer than smtplib
    accepts) raises ``SMTPServerDisconnected``: a broken link, not a refusal, so nothing
    is bounced for it, and after the final dot the message may have been delivered.
    ``deadline`` (``time.monotonic()``) bounds the whole read: a reply that trickles in a
    byte at a time raises ``TimeoutError`` once it passes, not a timeout per byte."""
    if sock is None:
        raise smtplib.SMTPServerDisconnected("please run connect() first")
    out: list[tuple[int, bytes]] = []
    lines: list[bytes] = []
    start = 0
    waited = False
    while len(out) < n:
        end = buf.find(b"\n", start)
        if end < 0:
            if len(buf) - start > MAX_REPLY_LINE:
                raise smtplib.SMTPServerDisconnected("reply line too long")
            del buf[:start]
            start = 0
            chunk = _recv(sock, deadline, waited)
            waited = True
            if not chunk:
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
            buf += chunk
            continue
        line = bytes(buf[start : end + 1])
        start = end + 1
        if len(line) > MAX_REPLY_LINE:
            raise smtplib.SMTPServerDisconnected("reply line too long")
        lines.append(line[4:].strip(b" \t\r\n"))
        if line[3:4] != b"-":
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
            out.append((code, b"\n".join(lines)))
            lines = []
    del buf[:start]
    return out


def _recv(sock: socket.socket, deadline: float | None, waited: bool) -> bytes:
    """One read: the first with the socket's own timeout, a further one (the reply came
    in pieces) within what is left of ``deadline``."""
    if deadline is None or not waited:
        return sock.recv(8192)
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the reply did not arrive whole in time")
    own = sock.gettimeout()
    sock.settimeout(left if own is None else min(left, own))
    try:
        return sock.recv(8192)
    finally:
        sock.settimeout(own)


#: any line end, made CRLF before dot-stuffing
_EOL = re.compile(rb"\r\n|\r|\n")


def dot_stuffed(data: bytes) -> bytes:
    """The body as DATA sends it (RFC 5321 §4.5.2): every line end made CRLF first, as
    smtplib does (a bare LF before a "." would let a lenient relay end the data there and
    read what follows as commands: SMTP smuggling), then each line's leading "." doubled."""
    body = _EOL.sub(b"\r\n", data).replace(b"\r\n.", b"\r\n..")
    return b"." + body if body.startswith(b".") else body


def timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised while handling, a socket timeout (smtplib turns
    a timed-out read or write into ``SMTPServerDisconnected``)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, TimeoutError):  # socket.timeout is TimeoutError
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def within(smtp: smtplib.SMTP, seconds: float, exchange: Callable[[], T]) -> T:
    """``exchange()`` (one of smtplib's own: the greeting, EHLO, STARTTLS, AUTH, RSET,
    QUIT), its whole reply bounded by ``seconds``. smtplib reads a reply line by line,
    each read with the socket's timeout, so a relay that trickles a reply a byte at a
    time could hold the connection as long as it liked; at the deadline a timer shuts
    the socket down, which ends any read, and the exchange raises ``TimeoutError``."""
    fired = threading.Event()
    lock = threading.Lock()
    done = False

    def expire() -> None:
        with lock:  # never after the exchange has returned: its socket is in use again
            if done:
                return
            fired.set()
            sock = smtp.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        out = exchange()
    except OSError as exc:
        if fired.is_set():
            raise TimeoutError(f"no whole reply within {seconds:g} s") from exc
        raise
    finally:
        with lock:
            done = True
        timer.cancel()
    if fired.is_set():  # answered just as the timer shut the socket: it is gone
        raise TimeoutError(f"no whole reply within {seconds:g} s")
    return out
