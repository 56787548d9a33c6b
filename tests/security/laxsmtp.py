"""A deliberately lax SMTP server: it accepts a bare LF as a line end and ``LF . LF``
as the end of DATA, like the servers SMTP smuggling abuses.

A message whose body or headers carry ``\\n.\\n`` followed by SMTP commands would
be split here into several transactions.  The hostile tests count transactions:
exactly one per delivery proves nothing was smuggled.  Runs in its own thread
with its own asyncio loop, on a free port.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from newsletter.devtools.sink import free_port

__all__ = ["LaxSmtp", "Transaction"]


@dataclass
class Transaction:
    mail_from: str
    rcpts: list[str]
    data: bytes


@dataclass
class LaxSmtp:
    port: int = 0
    transactions: list[Transaction] = field(default_factory=list)
    commands: list[bytes] = field(default_factory=list)

    def start(self) -> LaxSmtp:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._session, "127.0.0.1", self.port)
            )
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        def close() -> None:
            self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(close)
        self._thread.join(10)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 lax.example ESMTP")
        mail_from, rcpts = "", []
        try:
            while True:
                raw = await reader.readline()  # a bare LF ends a line here
                if not raw:
                    return
                line = raw.rstrip(b"\r\n")
                self.commands.append(line)
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-lax.example\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
                elif verb == b"MAIL":
                    mail_from, rcpts = line.split(b":", 1)[1].strip(b" <>").decode(), []
                    say("250 OK")
                elif verb == b"RCPT":
                    rcpts.append(line.split(b":", 1)[1].strip(b" <>").decode())
                    say("250 OK")
                elif verb == b"DATA":
                    say("354 go ahead")
                    await writer.drain()
                    body: list[bytes] = []
                    while True:
                        part = await reader.readline()
                        if not part:
                            return
                        if part.rstrip(b"\r\n") == b".":  # "\n.\n" ends DATA too: lax
                            break
                        body.append(part[1:] if part.startswith(b"..") else part)  # unstuff
                    self.transactions.append(Transaction(mail_from, rcpts, b"".join(body)))
                    mail_from, rcpts = "", []
                    say("250 queued")
                elif verb == b"RSET":
                    mail_from, rcpts = "", []
                    say("250 OK")
                elif verb == b"QUIT":
                    say("221 bye")
                    await writer.drain()
                    return
                else:
                    say("250 OK")
                await writer.drain()
        finally:
            writer.close()
