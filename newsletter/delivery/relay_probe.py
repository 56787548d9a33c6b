"""Asking a relay whether it answers, without sending anything: the probe that brings a
relay back into service and the doctor's check, and a test transaction up to RCPT.

Each wait is bounded (at most 10 s), so a hung relay never holds its prober long.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import contextmanager

from newsletter.delivery.relay_config import RelayConfig
from newsletter.delivery.wire import client_tls, login

__all__ = ["probe", "probe_rcpt"]


@contextmanager
def _session(relay: RelayConfig) -> Iterator[tuple[smtplib.SMTP, int]]:
    """A session with the relay as both probes open it: connect, EHLO, STARTTLS (the
    certificate checked as a send checks it) and EHLO again, login as configured; each
    wait at most 10 s. Yields the session and the last EHLO's code; QUIT after."""
    tls = client_tls(relay.tls_verify, relay.tls_ca_file) if relay.tls != "none" else None
    connect_t, command_t, _dot = relay.deadlines()
    # A hung relay must not hold its prober long: at most 10 s for each wait.
    smtp = (
        smtplib.SMTP_SSL(timeout=min(connect_t, 10), context=tls)
        if relay.tls == "ssl"
        else smtplib.SMTP(timeout=min(connect_t, 10))
    )
    smtp._host = relay.host  # type: ignore[attr-defined]  # (TLS names the server by it)
    smtp.connect(relay.host, relay.port)  # (the greeting is read with the same limit)
    if smtp.sock is not None:
        smtp.sock.settimeout(min(command_t, 10))
    try:
        code, _ = smtp.ehlo()
        if relay.tls == "starttls":
            smtp.starttls(context=tls)
            code, _ = smtp.ehlo()
        if relay.username:
            login(smtp, relay.username, relay.password.get_secret_value())
        yield smtp, code
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _failure(exc: smtplib.SMTPException | OSError) -> str:
    """A probe's failure in a word (and the relay's code, when it gave one)."""
    code = f" {exc.smtp_code}" if isinstance(exc, smtplib.SMTPResponseException) else ""
    return type(exc).__name__ + code


def probe(relay: RelayConfig) -> tuple[bool, str]:
    """(answers, detail): connect, EHLO, STARTTLS/login as configured, NOOP, QUIT."""
    if relay.host == "maildir":
        return True, "maildir"
    try:
        with _session(relay) as (smtp, code):
            noop, _ = smtp.noop()
    except (smtplib.SMTPException, OSError) as exc:
        return False, _failure(exc)
    return code == 250 and noop == 250, f"EHLO {code}, NOOP {noop}"


def probe_rcpt(relay: RelayConfig, sender: str, rcpt: str) -> tuple[bool, str]:
    """(accepts, detail): a test transaction up to RCPT (connect, EHLO, STARTTLS/login as
    configured, MAIL, RCPT, then RSET and QUIT: nothing is sent). Accepts on a 2xx RCPT."""
    if relay.host == "maildir":
        return True, "maildir"
    try:
        with _session(relay) as (smtp, _code):
            mail, _ = smtp.mail(sender)
            code, reply = smtp.rcpt(rcpt) if mail // 100 == 2 else (mail, b"(MAIL refused)")
            smtp.rset()
    except (smtplib.SMTPException, OSError) as exc:
        return False, _failure(exc)
    text = reply.decode("utf-8", "replace").splitlines()[0][:120] if reply else ""
    return code // 100 == 2, f"RCPT {code} {text}".strip()
