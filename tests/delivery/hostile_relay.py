"""A scriptable SMTP relay on raw sockets, for the client's hostile tests (it misbehaves
on request: odd replies, resets, hangs, replies a byte at a time, a lenient end of data).

Relay(hooks={event: fn}) where event in greeting, ehlo, mail, rcpt, data, dot, rset,
quit, other.  fn(conn, n, arg) returns:  bytes to send | None (default reply) |
"CLOSE" | "HANG" | "RST" | ("SEND_THEN_CLOSE", bytes).
conn.k[event] counts events across the conn; relay.counts across all conns.
Delivered messages go to relay.delivered as (conn_id, mail_from, rcpts, body).
"""

import socket
import struct
import threading
import time


class Conn:
    def __init__(self, relay, sock, cid):
        self.relay, self.sock, self.cid = relay, sock, cid
        self.buf = b""
        self.mail_from = None
        self.rcpts = []
        self.k = {}
        self.log = []

    def out(self, b):
        mode = self.relay.write_mode
        if mode == "bytewise":
            for i in range(len(b)):
                self.sock.sendall(b[i : i + 1])
                time.sleep(self.relay.byte_delay)
        else:
            self.sock.sendall(b)

    def readline(self):
        sep = self.relay.line_sep
        while sep not in self.buf:
            c = self.sock.recv(65536)
            if not c:
                return None
            self.buf += c
        i = self.buf.index(sep) + len(sep)
        line, self.buf = self.buf[:i], self.buf[i:]
        return line


class Relay:
    def __init__(
        self,
        hooks=None,
        pipelining=True,
        eightbit=True,
        write_mode="normal",
        byte_delay=0.0,
        line_sep=b"\r\n",
        extra_ehlo=(),
        lenient_dot=False,
    ):
        self.hooks = hooks or {}
        self.pipelining, self.eightbit = pipelining, eightbit
        self.write_mode, self.byte_delay = write_mode, byte_delay
        self.line_sep = line_sep
        self.lenient_dot = lenient_dot  # accept \n.\n / \n.\r\n as end of data (old Postfix)
        self.extra_ehlo = list(extra_ehlo)
        self.delivered = []
        self.events = []
        self.counts = {}
        self.conns = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(50)
        self.port = self.lsock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        cid = 0
        while not self.stopped:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            cid += 1
            c = Conn(self, s, cid)
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _act(self, c, event, arg, default):
        c.k[event] = c.k.get(event, 0) + 1
        self.counts[event] = self.counts.get(event, 0) + 1
        self.events.append((c.cid, event, arg if event != "dot" else len(arg)))
        fn = self.hooks.get(event)
        r = fn(c, self.counts[event], arg) if fn else None
        if r is None:
            r = default
        if r == "CLOSE":
            c.sock.close()
            raise EOFError
        if r == "RST":
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.sock.close()
            raise EOFError
        if r == "HANG":
            time.sleep(3600)
        if isinstance(r, tuple) and r[0] == "SEND_THEN_CLOSE":
            c.out(r[1])
            time.sleep(0.05)
            c.sock.close()
            raise EOFError
        if r:
            c.out(r)
        return r

    def _serve(self, c):
        try:
            self._act(c, "greeting", None, b"220 hostile ESMTP\r\n")
            while True:
                line = c.readline()
                if line is None:
                    self.events.append((c.cid, "eof", None))
                    return
                cmd = line.strip().upper()
                if cmd.startswith(b"EHLO"):
                    ext = []
                    if self.pipelining:
                        ext.append(b"PIPELINING")
                    if self.eightbit:
                        ext.append(b"8BITMIME")
                    ext += self.extra_ehlo
                    lines = [b"hostile", *ext]
                    rep = (
                        b"".join(b"250-" + x + b"\r\n" for x in lines[:-1])
                        + b"250 "
                        + lines[-1]
                        + b"\r\n"
                    )
                    self._act(c, "ehlo", line, rep)
                elif cmd.startswith(b"HELO"):
                    self._act(c, "ehlo", line, b"250 hostile\r\n")
                elif cmd.startswith(b"MAIL FROM:"):
                    r = self._act(c, "mail", line, b"250 2.1.0 ok\r\n")
                    if r[:1] == b"2" or r[:2] == b"OK":
                        c.mail_from = line[10:].strip().split(b" ")[0].strip(b"<>").decode()
                        c.rcpts = []
                elif cmd.startswith(b"RCPT TO:"):
                    addr = line[8:].strip().split(b" ")[0].strip(b"<>").decode()
                    r = self._act(c, "rcpt", addr, b"250 2.1.5 ok\r\n")
                    if r[:1] == b"2":
                        c.rcpts.append(addr)
                elif cmd == b"DATA":
                    ok = c.mail_from is not None and c.rcpts
                    r = self._act(
                        c,
                        "data",
                        (c.mail_from, list(c.rcpts)),
                        b"354 go ahead\r\n" if ok else b"554 5.5.1 no valid recipients\r\n",
                    )
                    if r[:3] != b"354":
                        continue
                    body = self._read_data(c)
                    if body is None:
                        self.events.append((c.cid, "eof-in-data", None))
                        return
                    r = self._act(c, "dot", body, b"250 2.0.0 queued\r\n")
                    if r[:3] == b"250" or r[:2] == b"OK":
                        self.delivered.append((c.cid, c.mail_from, list(c.rcpts), body))
                    c.mail_from, c.rcpts = None, []
                elif cmd == b"RSET":
                    c.mail_from, c.rcpts = None, []
                    self._act(c, "rset", None, b"250 2.0.0 reset\r\n")
                elif cmd == b"QUIT":
                    self._act(c, "quit", None, b"221 bye\r\n")
                    c.sock.close()
                    return
                elif cmd.startswith(b"AUTH"):
                    self._act(c, "auth", line, b"235 ok\r\n")
                else:
                    self._act(c, "other", line, b"500 5.5.2 what\r\n")
        except (EOFError, OSError):
            return

    def _read_data(self, c):
        lines = []
        if self.lenient_dot:
            # end of data at <LF>.<CR><LF> or <LF>.<LF> (pre-2024 Postfix/Sendmail leniency)
            while True:
                for term in (b"\n.\r\n", b"\n.\n"):
                    if term in c.buf:
                        i = c.buf.index(term)
                        body, c.buf = c.buf[: i + 1], c.buf[i + len(term) :]
                        # unstuff
                        body = body.replace(b"\n..", b"\n.")
                        return body
                x = c.sock.recv(65536)
                if not x:
                    return None
                c.buf += x
        while True:
            line = c.readline()
            if line is None:
                return None
            if line == b".\r\n":
                return b"".join(lines)
            if line.startswith(b"."):
                line = line[1:]
            lines.append(line)

    def stop(self):
        self.stopped = True
        self.lsock.close()


def conn(relay, **kw):
    from newsletter.delivery.smtp import SmtpConnection

    kw.setdefault("timeout", 2)
    return SmtpConnection("127.0.0.1", relay.port, **kw)


def msg(rcpt: str, text: str = "hello") -> bytes:
    return f"Subject: x\r\nTo: {rcpt}\r\n\r\n{text}\r\n".encode()
