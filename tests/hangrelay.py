"""A real SMTP server on a socket that stops answering: a hung relay.

It accepts TCP connections like any relay. ``at="greeting"`` with ``after=0`` never
sends a greeting; otherwise it serves ``after`` messages normally and then goes silent
on the next transaction, at ``MAIL`` (no reply to the command) or at the final dot (the
whole body received, no reply). From then on every new connection is accepted and never
greeted. It keeps reading what it is sent (a hung process's kernel still takes bytes)
and never closes a connection itself: only the client's deadline ends the wait.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class HungRelay:
    after: int = 0
    at: str = "greeting"  # greeting | mail | dot
    pipelining: bool = True
    #: (recipients, body) of each message answered 250
    messages: list[tuple[list[str], bytes]] = field(default_factory=list)
    #: recipients of bodies received in full but never answered (the relay may have them)
    unanswered: list[list[str]] = field(default_factory=list)
    #: TCP connections accepted, and of those, the ones accepted after it went silent
    connections: int = 0
    silent_connections: int = 0
    #: MAIL commands received after it went silent (a client that keeps trying)
    late_mail: int = 0
    hung: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        assert self.at in ("greeting", "mail", "dot")
        if self.at == "greeting":
            assert self.after == 0, "a greeting hang is from the start"
            self.hung.set()
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self._open: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="hung-relay").start()

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        with self._lock:
            for c in self._open:
                with contextlib.suppress(OSError):
                    c.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
                if self.hung.is_set():
                    self.silent_connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _silent(self, conn: socket.socket) -> None:
        """Hung: read and drop whatever comes until the client gives up."""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                if b"MAIL FROM" in data.upper():
                    with self._lock:
                        self.late_mail += 1
        except OSError:
            return

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            if self.hung.is_set():
                self._silent(conn)
                return
            f = conn.makefile("rb")
            try:
                conn.sendall(b"220 hung.test ESMTP\r\n")
                rcpts: list[str] = []
                while True:
                    line = f.readline()
                    if not line:
                        return
                    cmd = line.strip().upper()
                    if cmd.startswith((b"EHLO", b"HELO")):
                        ext = b"250-PIPELINING\r\n" if self.pipelining else b""
                        conn.sendall(
                            b"250-hung.test\r\n" + ext + b"250-8BITMIME\r\n250 SIZE 20000000\r\n"
                        )
                    elif cmd.startswith(b"MAIL"):
                        if self.hung.is_set() or (
                            self.at == "mail" and self._served() >= self.after
                        ):
                            self.hung.set()
                            self._silent(conn)
                            return
                        rcpts = []
                        conn.sendall(b"250 2.1.0 ok\r\n")
                    elif cmd.startswith(b"RCPT"):
                        addr = line.split(b":", 1)[1].strip().strip(b"<>").decode()
                        rcpts.append(addr)
                        conn.sendall(b"250 2.1.5 ok\r\n")
                    elif cmd == b"DATA":
                        conn.sendall(b"354 go ahead\r\n")
                        body = bytearray()
                        while True:
                            chunk = f.readline()
                            if not chunk:
                                return
                            if chunk == b".\r\n":
                                break
                            body += chunk
                        if self.at == "dot" and self._served() >= self.after:
                            with self._lock:
                                self.unanswered.append(rcpts)
                            self.hung.set()
                            self._silent(conn)
                            return
                        with self._lock:
                            self.messages.append((rcpts, bytes(body)))
                        conn.sendall(b"250 2.0.0 queued\r\n")
                    elif cmd == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        return
                    else:  # RSET, NOOP
                        conn.sendall(b"250 ok\r\n")
            except OSError:
                return

    def _served(self) -> int:
        with self._lock:
            return len(self.messages)
