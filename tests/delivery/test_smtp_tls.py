"""The SMTP client over TLS, against a real relay (aiosmtpd) with a certificate made here:
STARTTLS and implicit TLS deliver when the certificate checks out, and nothing goes out
when it does not (an unknown authority, another host's name) unless verification was
turned off on purpose. (smtplib names the TLS server from the host given to its
constructor; the client connects later, under its own deadlines, and had left that name
empty: every TLS relay raised ValueError out of ``send``. smtplib's default context
verified no certificate at all.)"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from newsletter.delivery.smtp import SmtpConnection
from newsletter.devtools.sink import SinkHandler, free_port


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key), valid around any date."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    ip = x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))
    start = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * 90))
        .add_extension(x509.SubjectAlternativeName([ip]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    crt, pem = folder / "relay.crt", folder / "relay.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    return _certificate(tmp_path)


def _server_context(files: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(files[0]), str(files[1]))
    return ctx


@contextmanager
def _relay(**server: Any) -> Iterator[tuple[int, SinkHandler]]:
    """An aiosmtpd relay on a free port (``server``: its TLS and AUTH settings)."""
    handler = SinkHandler()
    ctrl = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False, **server)
    ctrl.start()
    try:
        yield ctrl.port, handler
    finally:
        ctrl.stop()


@pytest.fixture
def starttls_relay(tls_files: tuple[Path, Path]) -> Iterator[tuple[int, SinkHandler]]:
    with _relay(tls_context=_server_context(tls_files), require_starttls=True) as relay:
        yield relay


@pytest.fixture
def implicit_tls_relay(tls_files: tuple[Path, Path]) -> Iterator[tuple[int, SinkHandler]]:
    with _relay(ssl_context=_server_context(tls_files)) as relay:
        yield relay


MESSAGE = b"Subject: tls\r\nTo: a@example.org\r\n\r\nover TLS\r\n"


def _send(conn: SmtpConnection) -> str:
    try:
        out = conn.send("b@example.org", "a@example.org", MESSAGE)
        again = conn.send("b@example.org", "c@example.org", MESSAGE)  # the same session
    finally:
        conn.close()
    assert again.state == out.state
    return out.state


def test_starttls_relay_delivers(
    starttls_relay: tuple[int, SinkHandler], tls_files: tuple[Path, Path]
) -> None:
    port, sink = starttls_relay
    ca = str(tls_files[0])
    state = _send(SmtpConnection("127.0.0.1", port, timeout=5, starttls=True, tls_ca_file=ca))
    assert state == "sent"
    assert [r for _f, rs, _d in sink.messages for r in rs] == ["a@example.org", "c@example.org"]


def test_implicit_tls_relay_delivers(
    implicit_tls_relay: tuple[int, SinkHandler], tls_files: tuple[Path, Path]
) -> None:
    port, sink = implicit_tls_relay
    ca = str(tls_files[0])
    state = _send(SmtpConnection("127.0.0.1", port, timeout=5, ssl=True, tls_ca_file=ca))
    assert state == "sent"
    assert len(sink.messages) == 2


@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize(
    ("host", "trust"), [("127.0.0.1", False), ("localhost", True)], ids=["unknown CA", "wrong name"]
)
def test_a_certificate_that_does_not_check_out_sends_nothing(
    starttls_relay: tuple[int, SinkHandler],
    implicit_tls_relay: tuple[int, SinkHandler],
    tls_files: tuple[Path, Path],
    implicit: bool,
    host: str,
    trust: bool,
) -> None:
    """A certificate from an authority nobody configured, or one for another host: the
    connection fails before anything is sent (deferred, never a bounce), by default."""
    port, sink = implicit_tls_relay if implicit else starttls_relay
    conn = SmtpConnection(
        host, port, timeout=5, ssl=implicit, starttls=not implicit,
        tls_ca_file=str(tls_files[0]) if trust else "",
    )  # fmt: skip
    try:
        out = conn.send("b@example.org", "a@example.org", MESSAGE)
    finally:
        conn.close(force=True)
    assert out.state == "deferred" and not out.maybe_delivered, out
    assert "CERTIFICATE_VERIFY_FAILED" in out.reply or "certificate" in out.reply.lower(), out
    assert not sink.messages


def test_verification_turned_off_on_purpose_delivers(
    starttls_relay: tuple[int, SinkHandler],
) -> None:
    port, sink = starttls_relay
    state = _send(SmtpConnection("127.0.0.1", port, timeout=5, starttls=True, tls_verify=False))
    assert state == "sent" and len(sink.messages) == 2


def test_the_relay_probe_speaks_tls_and_checks_the_certificate(
    starttls_relay: tuple[int, SinkHandler], tls_files: tuple[Path, Path]
) -> None:
    from newsletter.delivery.relay_config import RelayConfig
    from newsletter.delivery.relay_probe import probe

    port, _sink = starttls_relay
    trusted = RelayConfig(
        name="r", host="127.0.0.1", port=port, tls="starttls", tls_ca_file=str(tls_files[0])
    )
    assert probe(trusted)[0] is True
    untrusted = RelayConfig(name="r", host="127.0.0.1", port=port, tls="starttls")
    ok, detail = probe(untrusted)
    assert ok is False and "SSL" in detail, detail
    from newsletter.delivery.doctor import _relay_hint

    assert "tls_ca_file" in _relay_hint(detail)  # what `newsletter doctor` says to do


def test_a_relay_that_requires_starttls_refuses_plain_mail(
    starttls_relay: tuple[int, SinkHandler],
) -> None:
    """Without STARTTLS the relay refuses the sender (530): deferred, never a bounce."""
    port, sink = starttls_relay
    conn = SmtpConnection("127.0.0.1", port, timeout=5)
    try:
        out = conn.send("b@example.org", "a@example.org", MESSAGE)
    finally:
        conn.close(force=True)
    assert out.state == "deferred" and out.code == 530 and not sink.messages


class _Accounts:
    """An aiosmtpd authenticator that knows one account."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()
        self.seen: list[bytes] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        from aiosmtpd.smtp import AuthResult

        self.seen.append(auth_data.login)
        ok = (auth_data.login, auth_data.password) == (self.user, self.password)
        return AuthResult(success=ok)


@pytest.mark.parametrize(("user", "password"), [("newsletter", "p@ss:w0rd"), ("编辑部", "密码ü")])
def test_a_login_over_starttls_with_any_characters(
    tls_files: tuple[Path, Path], user: str, password: str
) -> None:
    """smtplib encodes AUTH as ASCII: a Chinese or accented name or password raised
    UnicodeEncodeError out of every send (and out of the relay probe). Such credentials
    go as AUTH PLAIN in UTF-8 (RFC 4616); the relay probe logs in the same way."""
    from newsletter.delivery.relay_config import RelayConfig
    from newsletter.delivery.relay_probe import probe

    accounts = _Accounts(user, password)
    ca = str(tls_files[0])
    with _relay(
        tls_context=_server_context(tls_files), require_starttls=True,
        authenticator=accounts, auth_require_tls=True,
    ) as (port, handler):  # fmt: skip
        good = SmtpConnection("127.0.0.1", port, timeout=5, starttls=True, tls_ca_file=ca,
                              username=user, password=password)  # fmt: skip
        assert _send(good) == "sent"
        relay = RelayConfig(name="r", host="127.0.0.1", port=port, tls="starttls",
                            tls_ca_file=ca, username=user, password=password)  # fmt: skip
        assert probe(relay)[0] is True
    assert len(handler.messages) == 2 and accounts.seen[0] == user.encode()


def test_a_ca_file_replaced_at_the_same_path_applies_to_the_next_connection(
    starttls_relay: tuple[int, SinkHandler], tls_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """A relay's CA file fixed (or rotated) in place is read again: the contexts are kept
    per version of the file, not until the worker restarts."""
    port, sink = starttls_relay
    other = tmp_path / "other"
    other.mkdir()
    wrong, _key = _certificate(other)
    ca = tmp_path / "relay-ca.pem"
    ca.write_bytes(wrong.read_bytes())

    def once() -> str:
        conn = SmtpConnection("127.0.0.1", port, timeout=5, starttls=True, tls_ca_file=str(ca))
        try:
            return conn.send("b@example.org", "a@example.org", MESSAGE).state
        finally:
            conn.close(force=True)

    assert once() == "deferred"
    ca.write_bytes(tls_files[0].read_bytes() + b"\n")  # (a size change, whatever the clock)
    assert once() == "sent" and len(sink.messages) == 1


def test_a_plain_relay_is_probed_without_reading_a_ca_file(
    tls_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """A ``tls_ca_file`` left in the configuration of a relay without TLS is not read by
    the probe either (it failed with FileNotFoundError and kept a working relay out)."""
    from newsletter.delivery.relay_config import RelayConfig
    from newsletter.delivery.relay_probe import probe, probe_rcpt
    from newsletter.devtools.sink import start_sink

    ctrl, _sink = start_sink()
    try:
        relay = RelayConfig(name="r", host="127.0.0.1", port=ctrl.port,
                            tls_ca_file=str(tmp_path / "absent.pem"))  # fmt: skip
        assert probe(relay)[0] is True
        assert probe_rcpt(relay, "b@example.org", "a@example.org")[0] is True
    finally:
        ctrl.stop()


def test_doctor_hints_name_what_to_fix() -> None:
    from newsletter.delivery.doctor import _relay_hint

    assert "tls_ca_file" in _relay_hint("FileNotFoundError")
    assert "STARTTLS" in _relay_hint("SMTPNotSupportedError")
    assert "tls_ca_file" in _relay_hint("SSLCertVerificationError")
    assert "host, port" in _relay_hint("ConnectionRefusedError")
