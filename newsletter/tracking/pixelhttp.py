"""The pixel server's HTTP pieces: every response prebuilt (with the Date of the current
second), and the rule that finds the client address behind trusted proxies."""

from __future__ import annotations

import base64
import ipaddress
from email.utils import formatdate

from newsletter.core import clock

__all__ = ["PIXEL", "Reject", "Responses", "Trusted"]

#: The 43-byte transparent GIF (the same bytes as the web app's route).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")

_GIF_HEADERS = (
    b"Content-Type: image/gif\r\nContent-Length: 43\r\n"
    b"Cache-Control: no-store, no-cache, must-revalidate, max-age=0\r\n"
    b"Pragma: no-cache\r\nExpires: 0\r\n"
)
_JSON = b"Content-Type: application/json\r\n"


class Reject(Exception):
    """A request the server refuses before it is complete (status line text)."""

    def __init__(self, status: bytes) -> None:
        self.status = status


class Responses:
    """Every response the server sends, prebuilt, with the Date header of the current second."""

    def __init__(self) -> None:
        self.second = -1
        self.refresh()

    def refresh(self) -> None:
        now = int(clock.timestamp())
        if now == self.second:
            return
        self.second = now
        date = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"

        def build(status: bytes, headers: bytes, body: bytes, head: bool = False) -> bytes:
            if not headers.startswith(b"Content-Type: image/gif"):
                headers += b"Content-Length: %d\r\n" % len(body)
            return (
                b"HTTP/1.1 " + status + b"\r\n" + date + headers + b"\r\n" + (b"" if head else body)
            )

        keep, close = b"Connection: keep-alive\r\n", b"Connection: close\r\n"
        not_found = (b"404 Not Found", _JSON, b'{"detail":"Not Found"}')
        not_allowed = (b"405 Method Not Allowed", _JSON + b"Allow: GET, HEAD\r\n",
                       b'{"detail":"Method Not Allowed"}')  # fmt: skip
        health = (b"200 OK", _JSON, b'{"status":"ok"}')
        self.gif = {True: build(b"200 OK", _GIF_HEADERS + keep, PIXEL),
                    False: build(b"200 OK", _GIF_HEADERS + close, PIXEL)}  # fmt: skip
        self.gif_head = {True: build(b"200 OK", _GIF_HEADERS + keep, PIXEL, head=True),
                         False: build(b"200 OK", _GIF_HEADERS + close, PIXEL, head=True)}  # fmt: skip
        self.other: dict[tuple[int, bool, bool], bytes] = {}
        for code, (status, headers, body) in ((404, not_found), (405, not_allowed), (200, health)):
            for keep_alive in (True, False):
                for head in (False, True):
                    hdrs = headers + (keep if keep_alive else close)
                    self.other[(code, keep_alive, head)] = build(status, hdrs, body, head)

    @staticmethod
    def dynamic(status: bytes, ctype: bytes, body: bytes, keep_alive: bool) -> bytes:
        """A response built now (metrics, readiness): never cached."""
        return (
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: "
            + ctype
            + b"\r\n"
            + b"Cache-Control: no-store\r\nContent-Length: %d\r\n" % len(body)
            + (b"Connection: keep-alive\r\n" if keep_alive else b"Connection: close\r\n")
            + b"\r\n"
            + body
        )

    @staticmethod
    def error(status: bytes) -> bytes:
        """A response that closes the connection (400, 414, 431, 500)."""
        body = b'{"detail":"' + status.split(b" ", 1)[1] + b'"}'
        return (b"HTTP/1.1 " + status + b"\r\n" + _JSON + b"Content-Length: %d\r\n" % len(body)
                + b"Connection: close\r\n\r\n" + body)  # fmt: skip


class Trusted:
    """The proxies whose ``X-Forwarded-For`` is believed (addresses, networks or ``*``)."""

    def __init__(self, spec: str) -> None:
        items = [x.strip() for x in spec.split(",") if x.strip()]
        self.everyone = "*" in items
        self.hosts = {x for x in items if "/" not in x}
        self.networks = [ipaddress.ip_network(x, strict=False) for x in items if "/" in x]

    def __contains__(self, host: str) -> bool:
        if self.everyone or host in self.hosts:
            return True
        if not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in n for n in self.networks)

    def client(self, peer: str, forwarded: bytes | None) -> str:
        """The client address: uvicorn's rule (nearest untrusted hop of X-Forwarded-For)."""
        if forwarded is None or peer not in self:
            return peer
        hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            if hop not in self:
                return hop
        return hops[0] if hops else peer
