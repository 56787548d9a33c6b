"""A local SMTP sink (aiosmtpd) that stores each received message as a .eml file.

The demo starts one; tests use it as a real SMTP server.  It can be told to
misbehave: answer a code for some recipients, or drop the connection after DATA.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["SinkHandler", "free_port", "start_sink"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SinkHandler:
    directory: Path | None = None
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    #: rcpt -> SMTP reply for RCPT TO (e.g. "550 5.1.1 no such user")
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    #: called with (envelope) at DATA; may return a reply string to override "250 OK"
    on_data: Callable[[Any], str | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Advertise PIPELINING (RFC 2920) like Postfix does; aiosmtpd reads commands in order.
    pipelining: bool = True
    #: Advertise 8BITMIME (aiosmtpd does); False plays a 7-bit relay.
    eightbit: bool = True

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        if not self.eightbit:  # a relay without 8BITMIME: 7-bit bodies only
            responses = [r for r in responses if "8BITMIME" not in r.upper()]
            last = responses[-1]
            responses[-1] = "250 " + last[4:] if last.startswith("250-") else last
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.on_data is not None:
            reply = self.on_data(envelope)
            if reply:
                return reply
        data: bytes = envelope.original_content or envelope.content
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), data))
            n = len(self.messages)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{n:06d}.eml").write_bytes(data)
        return "250 OK"


def start_sink(
    handler: SinkHandler | None = None, port: int | None = None
) -> tuple[Controller, SinkHandler]:
    handler = handler or SinkHandler()
    ctrl = Controller(
        handler,
        hostname="127.0.0.1",
        port=port or free_port(),
        decode_data=False,
        data_size_limit=10 * 1024 * 1024,
    )
    ctrl.start()
    return ctrl, handler
