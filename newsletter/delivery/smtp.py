"""SMTP connections: one reused per batch, outcomes classified for the ledger.

:class:`SmtpConnection` wraps ``smtplib.SMTP`` and turns every reply or failure
into an :class:`Outcome`: ``sent`` (2xx), ``deferred`` (4xx, or the connection
dropped: retry later on another connection), ``bounced`` (5xx for this
recipient: a hard bounce).  It uses 8BITMIME when the server offers it and
re-encodes to base64 otherwise.

Every wait has a deadline: the TCP connect (``connect_timeout``), the greeting and
each command (``timeout``) and the reply to the final dot (``data_timeout``) each have
their own. A relay that accepts the connection and then never answers, or stops
answering mid-transaction, gives a ``deferred`` outcome with ``timed_out`` set within
that time; the relay layer takes such a relay out of service at once.

With PIPELINING (RFC 2920) the envelope (MAIL, RCPT, DATA) goes in one write, and the
caller may name the next message's envelope (``then``): it is written behind this
message's final dot, so one message costs one wait on the relay instead of two. Only an
envelope goes ahead, never a body: the next message is delivered only when the next
``send`` writes its body and final dot (after ``proceed`` has been asked again). When that
``send`` never comes, or comes for another recipient, the connection is reset, which makes
the relay drop the open transaction (RFC 5321 §4.1.1.4), and a new one is opened.

With ``host == "maildir"`` messages are written to a maildir outbox instead
(embedded mode without any SMTP server).
"""

from __future__ import annotations

import logging
import mailbox
import smtplib
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.delivery.assemble import to_base64
from newsletter.delivery.wire import (
    client_tls,
    dot_stuffed,
    login,
    read_replies,
    timed_out,
    within,
)
from newsletter.delivery.wire import envelope as _envelope
from newsletter.delivery.wire import send_parts as _send_parts

log = logging.getLogger(__name__)

__all__ = ["MaildirConnection", "Outcome", "SmtpConnection", "settings_connection"]


@dataclass(slots=True)
class Outcome:
    state: str  # sent | deferred | bounced | failed (refused before sending)
    code: int | None
    reply: str
    #: The whole message reached the relay but its reply did not come back (the link
    #: broke after the final dot): the relay may have taken it, so a retry is at risk
    #: of a duplicate and is counted as such.
    maybe_delivered: bool = False
    #: The relay did not answer within its deadline (connect, greeting, a command, or
    #: the final dot): a hung relay, taken out of service at once.
    timed_out: bool = False
    #: The caller withdrew before the body (``proceed``): nothing reached the relay, and
    #: the relay did nothing wrong.
    abandoned: bool = False


class _Abandoned(Exception):
    """The caller's ``proceed`` said no once the relay was ready for the body."""


def _text(msg: bytes | str) -> str:
    """A reply's text as a person reads it."""
    return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)


def _asks_yes(proceed: Callable[[], bool]) -> bool:
    """``proceed()``, and no when it fails: a message is sent only on a clear yes."""
    try:
        return bool(proceed())
    except Exception as exc:
        log.warning("the check before the body failed (%r): the message is not sent", exc)
        return False


class SmtpConnection:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 30.0,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        pipelining: bool = True,
        ssl: bool = False,
        connect_timeout: float | None = None,
        data_timeout: float | None = None,
        tls_verify: bool = True,
        tls_ca_file: str = "",
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        #: how the relay's certificate is checked (``wire.client_tls``)
        self.tls_verify, self.tls_ca_file = tls_verify, tls_ca_file
        #: the TCP connect; the greeting and every command get ``timeout``
        self.connect_timeout = connect_timeout if connect_timeout is not None else timeout
        #: the reply to the final dot (the relay may scan the message first)
        self.data_timeout = data_timeout if data_timeout is not None else timeout
        #: what the connection is waiting for, named in a timeout's reply
        self.phase = "connect"
        self.username, self.password, self.starttls = username, password, starttls
        self.ssl = ssl  # implicit TLS (port 465) instead of STARTTLS
        self._smtp: smtplib.SMTP | None = None
        self.eightbit = True
        self.allow_pipelining = pipelining
        self.pipelining = False
        self._handed_over = False
        #: (from, rcpt) of an envelope written behind the last final dot, its three
        #: replies not read yet: the relay waits for that message's body
        self._pending: tuple[str, str] | None = None
        #: bytes read off the socket and not parsed into replies yet (``_replies``)
        self._buf = bytearray()

    def _open(self) -> smtplib.SMTP:
        tls = client_tls(self.tls_verify, self.tls_ca_file) if self.ssl or self.starttls else None
        smtp: smtplib.SMTP = (
            smtplib.SMTP_SSL(timeout=self.connect_timeout, context=tls)
            if self.ssl
            else smtplib.SMTP(timeout=self.connect_timeout)
        )
        # The name TLS checks and sends (SNI): smtplib sets it only when the host is given
        # to the constructor, which would also connect there, without these deadlines.
        smtp._host = self.host  # type: ignore[attr-defined]
        try:
            # TCP connect (and TLS for implicit TLS) within connect_timeout, then the
            # greeting, whole, within timeout: smtplib's connect() without its one timeout
            # for both.
            self.phase = "connect"
            connect = smtp._get_socket  # type: ignore[attr-defined]
            smtp.sock = connect(self.host, self.port, self.connect_timeout)
            smtp.file = None
            smtp.sock.settimeout(self.timeout)
            smtp.timeout = self.timeout
            self.phase = "greeting"
            code, greeting = within(smtp, self.timeout, smtp.getreply)
            if code != 220:  # a refusal; the relay may go on talking
                raise smtplib.SMTPConnectError(code, greeting)
            self.phase = "ehlo"
            within(smtp, self.timeout, smtp.ehlo)
            if self.starttls:
                self.phase = "starttls"
                within(smtp, self.timeout, lambda: smtp.starttls(context=tls))
                within(smtp, self.timeout, smtp.ehlo)
            if self.username:
                self.phase = "login"
                within(smtp, self.timeout, lambda: login(smtp, self.username, self.password))
        except BaseException:
            smtp.close()  # (not yet ours to close: a refused setup left its socket open)
            raise
        self.eightbit = smtp.has_extn("8bitmime")
        self.pipelining = self.allow_pipelining and smtp.has_extn("pipelining")
        return smtp

    def send(
        self,
        envelope_from: str,
        rcpt: str,
        message: bytes,
        *,
        signer: Any = None,
        dot_free: bool = False,
        proceed: Callable[[], bool] | None = None,
        then: tuple[str, str] | None = None,
        meanwhile: Callable[[], object] | None = None,
    ) -> Outcome:
        """Send one message. ``signer`` re-signs DKIM when the body must be re-encoded;
        ``dot_free``: the caller knows that no line of ``message`` begins with ".";
        ``then``: the (from, rcpt) of the message the caller will send next on this
        connection, whose envelope may go out behind this one's final dot;
        ``meanwhile``: work to do once the body is written, before its reply is read (the
        caller builds the next message while the relay takes this one); what it raises
        is left for the caller to meet again.

        ``proceed`` is asked once the relay has accepted the envelope and waits for the
        body, the last moment before the message can reach anyone: when it answers False
        (the batch's lease may have run out while a slow or cut-off relay held the
        envelope's replies back, so another worker may own the row now) the connection is
        dropped without the final dot, which makes the relay discard the transaction."""
        self._handed_over = False
        if self._pending is not None and self._pending != (envelope_from, rcpt):
            # The relay waits for another message's body: reset, never a stray dot.
            self.close(force=True)
        try:
            if self._smtp is None:
                try:
                    self._smtp = self._open()
                except smtplib.SMTPResponseException as exc:
                    # greeting, EHLO, STARTTLS or AUTH refused: the relay's state, never
                    # the reader's (a 535 must not bounce, let alone suppress, anyone)
                    self.close(force=True)
                    refusal = f"connection refused: {_text(exc.smtp_error)}"
                    return Outcome("deferred", exc.smtp_code, refusal[:1000])
            self.phase = "mail"
            opts = ["BODY=8BITMIME"] if self.eightbit else []
            data = message
            if not self.eightbit:
                data = to_base64(message)
                dot_free = False  # (re-encoded: what the caller knew no longer holds)
                if signer is not None:
                    data = signer.sign_message(data)
            self._transaction(envelope_from, rcpt, data, opts, dot_free, proceed, then, meanwhile)
        except _Abandoned:
            return Outcome(
                "deferred",
                None,
                "租约已过，邮件正文未发出，事务已放弃"
                " / lease ran out before the body: transaction abandoned",
                abandoned=True,
            )
        except smtplib.SMTPRecipientsRefused as exc:
            code, msg = exc.recipients.get(rcpt, (550, b"recipient refused"))
            return self._classify(code, msg)
        except smtplib.SMTPSenderRefused as exc:
            return self._classify(exc.smtp_code, exc.smtp_error, sender=True)
        except smtplib.SMTPDataError as exc:
            return self._classify(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPResponseException as exc:
            return self._classify(exc.smtp_code, exc.smtp_error)
        except OSError as exc:  # refused, reset, timed out, DNS failure, link lost
            if timed_out(exc):
                return self._timeout()
            if isinstance(exc, smtplib.SMTPServerDisconnected):
                self.close(force=True)
                return Outcome(
                    "deferred",
                    None,
                    f"connection lost: {exc}"[:1000],
                    maybe_delivered=self._handed_over,
                )
            self.close(force=True)
            if self._handed_over:  # the body went out; its reply never came
                return Outcome(
                    "deferred", None, f"connection lost: {exc}"[:1000], maybe_delivered=True
                )
            return Outcome("deferred", None, f"connection failed: {exc}"[:1000])
        except BaseException:
            # (a caller's callback or the re-encoding failed): never leave the relay
            # waiting in DATA for a body, where the next envelope would become text
            self.close(force=True)
            raise
        return Outcome("sent", 250, "ok")

    def _timeout(self) -> Outcome:
        """The relay did not answer in time: the connection is reset (nothing it still
        holds goes out later) and the message deferred; if the body had gone out, the
        relay may have it, so a retry is counted at risk."""
        self.close(force=True)
        limit = {"connect": self.connect_timeout, "dot": self.data_timeout}.get(
            self.phase, self.timeout
        )
        return Outcome(
            "deferred",
            None,
            f"发信服务器 {limit:g} 秒内无响应（{self.phase}）"
            f" / timed out: no answer to {self.phase} within {limit:g} s",
            maybe_delivered=self._handed_over,
            timed_out=True,
        )

    def _transaction(
        self,
        envelope_from: str,
        rcpt: str,
        data: bytes,
        opts: list[str],
        dot_free: bool = False,
        proceed: Callable[[], bool] | None = None,
        then: tuple[str, str] | None = None,
        meanwhile: Callable[[], object] | None = None,
    ) -> None:
        """MAIL, RCPT, DATA — like ``smtplib.sendmail`` for one recipient, but the body is
        dot-stuffed with one ``bytes.replace`` instead of smtplib's per-message regex (far
        slower on a whole issue), or not at all when ``dot_free`` (the replace still scans
        the body); raises the same exceptions sendmail does."""
        smtp = self._smtp
        assert smtp is not None
        if self.pipelining:
            # RFC 2920: MAIL, RCPT and DATA in one write (or behind the last final dot),
            # then their three replies in order.
            self.phase = "mail"
            if self._pending is None:
                _send_parts(smtp, (_envelope(envelope_from, rcpt, opts),))
            self._pending = None
            mail, rcpt_reply, data_reply = self._replies(smtp, 3)
            if self._buf:  # more replies than commands: nothing is sent on this link
                self.close(force=True)
                raise smtplib.SMTPServerDisconnected("relay out of step: a reply too many")
        else:
            # (one command at a time, each reply read by smtplib: whole within timeout)
            t = self.timeout
            self.phase = "mail"
            mail = within(smtp, t, lambda: smtp.mail(envelope_from, opts))
            self.phase = "rcpt"
            rcpt_reply = within(smtp, t, lambda: smtp.rcpt(rcpt)) if mail[0] == 250 else (503, b"")
            if mail[0] == 250 and rcpt_reply[0] in (250, 251):
                self.phase = "data"
                smtp.putcmd("data")
                data_reply = within(smtp, t, smtp.getreply)
            else:
                data_reply = (503, b"not sent")
        if mail[0] != 250 or rcpt_reply[0] not in (250, 251) or data_reply[0] != 354:
            self._refused(smtp, envelope_from, rcpt, mail, rcpt_reply, data_reply)
        if proceed is not None and not _asks_yes(proceed):
            # RFC 5321 4.1.1.4: a transaction whose data never ended is not delivered.
            self.close(force=True)
            raise _Abandoned
        body = data
        if not dot_free:
            body = dot_stuffed(data)
        self.phase = "body"
        ahead = b""
        if then is not None and self.pipelining:
            ahead = _envelope(then[0], then[1], opts)
        _send_parts(smtp, (body, b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n", ahead))
        self._handed_over = True
        self._pending = then if ahead else None
        self.phase = "dot"
        if meanwhile is not None:
            try:
                meanwhile()
            except Exception as exc:  # (the caller meets it again where it matters)
                log.debug("work beside the final dot's reply failed: %r", exc)
        sock = smtp.sock
        if sock is not None and self.data_timeout != self.timeout:
            sock.settimeout(self.data_timeout)
        ((code, resp),) = self._replies(smtp, 1)
        if smtp.sock is not None and self.data_timeout != self.timeout:
            smtp.sock.settimeout(self.timeout)
        if code < 0:  # not a reply: the relay may have the message, as on a broken link
            self.close(force=True)
            raise smtplib.SMTPServerDisconnected("unreadable reply to the final dot")
        # a reply left over with no envelope ahead: more replies than commands
        out_of_step = bool(self._buf) and self._pending is None
        self.phase = "mail"
        if code == 250:
            if out_of_step:
                self.close(force=True)
            return
        if code == 421 or self._pending is not None or out_of_step:
            # (with an envelope ahead, a RSET would land in that message's body)
            self.close(force=True)
        else:
            self._reset_or_drop(smtp)
        raise smtplib.SMTPDataError(code, resp)

    def _refused(
        self,
        smtp: smtplib.SMTP,
        envelope_from: str,
        rcpt: str,
        mail: tuple[int, bytes],
        rcpt_reply: tuple[int, bytes],
        data_reply: tuple[int, bytes],
    ) -> None:
        """The envelope was not accepted: end the transaction and raise what sendmail
        raises for the first refusal (sender, recipient, or DATA)."""
        if 421 in (mail[0], rcpt_reply[0], data_reply[0]) or data_reply[0] == 354:
            # (a relay waiting for a body gets a reset: a lone dot would end an empty
            # message and deliver it)
            self.close(force=True)
        else:
            self._reset_or_drop(smtp)
        if mail[0] != 250:
            raise smtplib.SMTPSenderRefused(mail[0], mail[1], envelope_from)
        if rcpt_reply[0] not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({rcpt: rcpt_reply})
        raise smtplib.SMTPDataError(data_reply[0], data_reply[1])

    def _reset_or_drop(self, smtp: smtplib.SMTP) -> None:
        """RSET after a refusal; a relay that fails it is dropped (the refusal stands)."""
        try:
            within(smtp, self.timeout, smtp.rset)
        except OSError:  # (smtplib's errors are OSErrors; TimeoutError too)
            self.close(force=True)

    def _replies(self, smtp: smtplib.SMTP, n: int) -> list[tuple[int, bytes]]:
        """The next ``n`` replies (``wire.read_replies``), whole within the phase's
        deadline however slowly they trickle in; a reply that cannot be read drops the
        connection."""
        limit = self.data_timeout if self.phase == "dot" else self.timeout
        try:
            return read_replies(smtp.sock, self._buf, n, time.monotonic() + limit)
        except smtplib.SMTPServerDisconnected:
            self.close(force=True)
            raise

    @staticmethod
    def _classify(code: int, msg: bytes | str, *, sender: bool = False) -> Outcome:
        """The outcome of a refusal. Whoever raised it has already ended the transaction
        (``_refused`` and the final dot's check: a RSET, or a reset on 421, with an
        envelope ahead, or out of step)."""
        text = _text(msg)
        if 500 <= code < 600 and not sender:
            return Outcome("bounced", code, text[:1000])
        # 4xx, or a sender-level refusal: retry later (sender problems are not the recipient's)
        return Outcome("deferred", code, text[:1000])

    def close(self, *, force: bool = False) -> None:
        if self._pending is not None:
            # The relay waits for a body that will not come: QUIT would be read as its
            # text; a reset makes the relay drop the transaction.
            force, self._pending = True, None
        self._buf.clear()
        if self._smtp is None:
            return
        try:
            if not force:
                within(self._smtp, self.timeout, self._smtp.quit)
            else:
                # A broken transaction ends with a reset, not a FIN: what the kernel still
                # holds for this socket is dropped rather than delivered to the relay
                # later, as a message we have already given up on.
                sock = getattr(self._smtp, "sock", None)
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self._smtp.close()
        except Exception:
            pass
        self._smtp = None


class MaildirConnection:
    """Writes each message into ``outbox`` (a maildir) and reports it sent."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(str(path), create=True)
        for sub in ("tmp", "new", "cur"):
            (path / sub).mkdir(parents=True, exist_ok=True)

    def send(
        self,
        envelope_from: str,
        rcpt: str,
        message: bytes,
        *,
        signer: Any = None,
        dot_free: bool = False,
        proceed: Callable[[], bool] | None = None,
        then: tuple[str, str] | None = None,
        meanwhile: Callable[[], object] | None = None,
    ) -> Outcome:
        if proceed is not None and not proceed():
            return Outcome("deferred", None, "lease ran out: not stored", abandoned=True)
        envelope = f"Return-Path: <{envelope_from}>\r\nDelivered-To: {rcpt}\r\n".encode()
        self.box.add(envelope + message)
        if meanwhile is not None:
            meanwhile()
        return Outcome("sent", 250, "stored in maildir")

    def close(self, *, force: bool = False) -> None:
        pass


def settings_connection(cfg: Any) -> SmtpConnection | MaildirConnection:
    """A connection to the single relay of the ``smtp_*`` settings (or the maildir)."""
    if cfg.smtp_host == "maildir":
        return MaildirConnection(cfg.outbox_dir)
    return SmtpConnection(
        cfg.smtp_host,
        cfg.smtp_port,
        timeout=cfg.smtp_timeout,
        connect_timeout=cfg.smtp_connect_timeout,
        data_timeout=cfg.smtp_data_timeout,
        username=cfg.smtp_username,
        password=cfg.smtp_password.get_secret_value(),
        starttls=cfg.smtp_starttls,
        tls_verify=cfg.smtp_tls_verify,
        tls_ca_file=cfg.smtp_tls_ca_file,
    )
