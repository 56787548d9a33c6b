"""DKIM signing checked by an independent verifier (dkimpy), on real rendered issues."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import re
from email.header import decode_header, make_header
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from typer.testing import CliRunner

from newsletter.delivery.assemble import CompiledMessage, Recipient, compile_message
from newsletter.delivery.dkim import (
    DEFAULT_SIGNED_HEADERS,
    DkimSettings,
    DkimSigner,
    load_signer,
)
from newsletter.delivery.dkim_canon import canon_body
from newsletter.delivery.dkim_keys import (
    dkim_app,
    dns_txt_record,
    generate_ed25519_key,
    generate_rsa_key,
)

ROOT = Path(__file__).resolve().parents[2]
SUBJECT = "《营商环境与数字经济政策周报》｜第47期：国务院关于进一步优化营商环境的若干意见解读"
FROM_NAME = "营商环境政策周报·示例研究院"


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    return generate_rsa_key(2048)


@pytest.fixture(scope="module")
def ed_pem() -> bytes:
    return generate_ed25519_key()


@pytest.fixture(scope="module")
def rendered() -> tuple[str, str]:
    """The real renderer's email output for examples/issue-sample.md (~100 KB CJK HTML)."""
    from newsletter.content.parser import load_issue
    from newsletter.render import RenderContext, render_all

    issue = load_issue(ROOT / "examples" / "issue-sample.md")[0]
    ctx = RenderContext(
        base_url="https://news.example.org",
        publication_name="营商环境政策周报",
        publication_slug="weekly",
        postal_address="上海市黄浦区示例路 1 号 200001",
        sender_name="示例研究院",
    )
    mail = render_all(issue, ctx).email
    assert len(mail.html.encode()) > 90_000 and "%%NAME%%" in mail.html
    return mail.html, mail.text


def _compile(html: str, text: str, signer: DkimSigner | None) -> CompiledMessage:
    c = compile_message(
        html_body=html,
        text_body=text,
        subject=SUBJECT,
        from_name=FROM_NAME,
        from_address="news@example.org",
        list_id="weekly.example.org",
        list_name="营商环境政策周报",
        feedback_id="i47:weekly:newsletter:example.org",
        unsub_base="https://news.example.org/u/",
        unsub_mailto="unsubscribe@example.org",
        reply_to="editor@example.org",
    )
    c.signer = signer
    return c


def _dns(records: dict[str, str]):  # type: ignore[no-untyped-def]
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return (
            records.get(name.decode().rstrip(".")).encode()
            if name.decode().rstrip(".") in records
            else None
        )

    return lookup


RECIPIENTS = [
    Recipient(1, "reader0@example.com", "读者0", "d1.AAAAAAAAAAAAAAAA", "u1-0.BBBBBBBBBBBBBBBB"),
    Recipient(2, "li.lei@example.cn", "李雷", "d2.CCCCCCCCCCCCCCCC", "u2-0.DDDDDDDDDDDDDDDD"),
    Recipient(3, "nobody@example.net", "", "d3.EEEEEEEEEEEEEEEE", "u3-0.FFFFFFFFFFFFFFFF"),
    # Whitespace a naive prefix hash would get wrong: leading/trailing/double spaces, a tab.
    Recipient(4, "odd@example.org", "  Zhang \t San  ", "d4.GGGGGGGGGGGGGGGG", "u4-0.HH"),
    Recipient(5, "han@example.tw", "陳 大文", "d5.IIIIIIIIIIIIIIII", "u5-0.JJJJJJJJJJJJJJJJ"),
]


def test_messages_verify_with_dkimpy_for_several_recipients(rendered, rsa_pem) -> None:  # type: ignore[no-untyped-def]
    signer = DkimSigner.from_pem("example.org", "nl2026", rsa_pem)
    compiled = _compile(*rendered, signer)
    dns = _dns({"nl2026._domainkey.example.org": dns_txt_record(rsa_pem)})
    for r in RECIPIENTS:
        _msgid, msg = compiled.build(r)
        assert msg.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
        assert dkim.verify(msg, dnsfunc=dns), r
        assert max(len(line) for line in msg.split(b"\r\n")) <= 998
        assert b"\n" not in msg.replace(b"\r\n", b"")  # no bare LF anywhere
        # Chinese Subject and From still round-trip.
        parsed = email.message_from_bytes(msg, policy=email.policy.default)
        assert str(parsed["Subject"]) == SUBJECT
        assert str(
            make_header(decode_header(msg.split(b"\r\nFrom: ")[1].split(b"\r\n")[0].decode()))
        ).startswith(FROM_NAME)


def test_h_tag_covers_the_list_headers_and_oversigns_from(rendered, rsa_pem) -> None:  # type: ignore[no-untyped-def]
    compiled = _compile(*rendered, DkimSigner.from_pem("example.org", "s1", rsa_pem))
    _id, msg = compiled.build(RECIPIENTS[0])
    sig = email.message_from_bytes(msg, policy=email.policy.compat32)["DKIM-Signature"]
    tags = dict(
        (k.strip(), v)
        for k, _, v in (t.partition("=") for t in re.sub(r"\s+", "", sig).split(";") if t)
    )
    h = tags["h"].split(":")
    assert h == list(DEFAULT_SIGNED_HEADERS)
    for name in (
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "reply-to",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "mime-version",
        "content-type",
    ):
        assert h.count(name) == 2, name  # oversigned
    for name in (
        "list-unsubscribe",
        "list-unsubscribe-post",
        "list-id",
        "feedback-id",
        "to",
        "message-id",
    ):
        assert name in h
    assert tags["d"] == "example.org" and tags["s"] == "s1" and tags["c"] == "relaxed/relaxed"


def test_tampering_breaks_the_signature(rendered, rsa_pem) -> None:  # type: ignore[no-untyped-def]
    compiled = _compile(*rendered, DkimSigner.from_pem("example.org", "s1", rsa_pem))
    dns = _dns({"s1._domainkey.example.org": dns_txt_record(rsa_pem)})
    _id, msg = compiled.build(RECIPIENTS[1])
    assert dkim.verify(msg, dnsfunc=dns)
    # Body: change one character of the HTML part.
    i = msg.index("请".encode()) if "请".encode() in msg else msg.index(b"<p")
    body_tampered = msg[:i] + b"X" + msg[i + 1 :]
    assert not dkim.verify(body_tampered, dnsfunc=dns)
    # List-Unsubscribe: point it at another subscriber's token.
    lu_tampered = msg.replace(b"/u/u2-0.DDDDDDDDDDDDDDDD>", b"/u/u9-0.DDDDDDDDDDDDDDDD>", 1)
    assert lu_tampered != msg
    assert not dkim.verify(lu_tampered, dnsfunc=dns)
    # A second From added above the signed one (the oversigning case).
    forged = b"From: attacker@evil.example\r\n" + msg
    assert not dkim.verify(forged, dnsfunc=dns)
    # Whitespace changes that relaxed canonicalisation allows still verify.
    relaxed = msg.replace(b"\r\n--=_nl_", b" \t \r\n--=_nl_", 1).replace(
        b" <weekly.example.org>", b"  <weekly.example.org>", 1
    )
    assert relaxed != msg
    assert dkim.verify(relaxed, dnsfunc=dns)


def test_body_hash_equals_full_canonicalisation(rendered, rsa_pem) -> None:  # type: ignore[no-untyped-def]
    """The shared-prefix hash agrees with canonicalising the whole body, for tricky bodies too."""
    html, text = rendered
    # Trailing spaces, tabs and runs around slots, a slot at a line end, trailing blank lines.
    tricky_html = html.replace("%%NAME%%", " \t%%NAME%%  ", 1) + "\n  tail %%TOKEN%%\t \n\n\n"
    tricky_text = "%%NAME%%\t\n" + text.replace("\n", "  \n", 20) + "\n%%UNSUB%% \n \n"
    signer = DkimSigner.from_pem("example.org", "s1", rsa_pem)
    dns = _dns({"s1._domainkey.example.org": dns_txt_record(rsa_pem)})
    for h, t in ((html, text), (tricky_html, tricky_text)):
        compiled = _compile(h, t, signer)
        for r in RECIPIENTS:
            _id, msg = compiled.build(r)
            body = msg.partition(b"\r\n\r\n")[2]
            want = base64.b64encode(hashlib.sha256(canon_body(body)).digest()).decode()
            assert f"bh={want};" in msg.decode(), r
            assert dkim.verify(msg, dnsfunc=dns), r


def test_ed25519_second_signature(rendered, rsa_pem, ed_pem) -> None:  # type: ignore[no-untyped-def]
    signer = DkimSigner.from_pem(
        "example.org", "rsa1", rsa_pem, ed25519_selector="ed1", ed25519_pem=ed_pem
    )
    compiled = _compile(*rendered, signer)
    records = {
        "rsa1._domainkey.example.org": dns_txt_record(rsa_pem),
        "ed1._domainkey.example.org": dns_txt_record(ed_pem),
    }
    assert records["ed1._domainkey.example.org"].startswith("v=DKIM1; k=ed25519; p=")
    _id, msg = compiled.build(RECIPIENTS[0])
    assert msg.count(b"DKIM-Signature:") == 2
    d = dkim.DKIM(msg)
    assert d.verify(idx=0, dnsfunc=_dns(records))  # RSA
    try:
        import nacl  # noqa: F401  (dkimpy needs PyNaCl for ed25519)
    except ImportError:
        _verify_ed25519_rfc8463(msg, ed_pem)
    else:
        assert dkim.DKIM(msg).verify(idx=1, dnsfunc=_dns(records))


def _verify_ed25519_rfc8463(msg: bytes, ed_pem: bytes) -> None:
    """RFC 8463 check using dkimpy's own parser and canonicaliser, and cryptography's Ed25519."""
    from cryptography.hazmat.primitives import serialization
    from dkim import CanonicalizationPolicy, hash_headers, parse_tag_value, rfc822_parse

    headers, body = rfc822_parse(msg)
    sigs = [(n, v) for n, v in headers if n.lower() == b"dkim-signature"]
    sig = parse_tag_value(sigs[1][1])
    assert sig[b"a"] == b"ed25519-sha256"
    canon = CanonicalizationPolicy.from_c_value(sig[b"c"])
    assert base64.b64decode(sig[b"bh"]) == hashlib.sha256(canon.canonicalize_body(body)).digest()
    include = [x.lower() for x in re.split(rb"\s*:\s*", sig[b"h"])]
    h = hashlib.sha256()
    hash_headers(h, canon, canon.canonicalize_headers(headers), include, sigs[1], sig)
    key = serialization.load_pem_private_key(ed_pem, None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    pub = ed25519.Ed25519PublicKey.from_public_bytes(
        base64.b64decode(dns_txt_record(ed_pem).split("p=")[1])
    )
    pub.verify(base64.b64decode(re.sub(rb"\s+", b"", sig[b"b"])), h.digest())  # raises if bad
    assert key.public_key() == pub


def test_sign_message_resigns_a_base64_reencoded_message(rendered, rsa_pem) -> None:  # type: ignore[no-untyped-def]
    from newsletter.delivery.assemble import to_base64

    signer = DkimSigner.from_pem("example.org", "s1", rsa_pem)
    dns = _dns({"s1._domainkey.example.org": dns_txt_record(rsa_pem)})
    _id, msg = _compile(*rendered, signer).build(RECIPIENTS[0])
    b64 = to_base64(msg)
    assert not dkim.verify(b64, dnsfunc=dns)  # the body changed
    resigned = signer.sign_message(b64)
    assert resigned.count(b"DKIM-Signature:") == 1
    assert dkim.verify(resigned, dnsfunc=dns)


def test_unsigned_build_is_unchanged(rendered) -> None:  # type: ignore[no-untyped-def]
    compiled = _compile(*rendered, None)
    _id, msg = compiled.build(RECIPIENTS[0], date="Mon, 30 Nov 2026 01:00:00 -0000")
    assert msg.startswith(b"To: ") and b"DKIM-Signature" not in msg


def test_keygen_cli_prints_the_txt_record(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        dkim_app,
        [
            "keygen",
            "--selector",
            "nl2026",
            "--domain",
            "example.org",
            "--out",
            str(tmp_path),
            "--algorithm",
            "both",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "v=DKIM1; k=rsa; p=" in res.output and "v=DKIM1; k=ed25519; p=" in res.output
    key = tmp_path / "nl2026.example.org.rsa.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    record = next(line for line in res.output.splitlines() if line.startswith("v=DKIM1; k=rsa"))
    assert record == dns_txt_record(key.read_bytes())
    zone = (tmp_path / "nl2026.example.org.rsa.txt").read_text()
    assert zone.startswith("nl2026._domainkey.example.org. 3600 IN TXT (")
    assert all(len(s) <= 255 for s in re.findall(r'"([^"]*)"', zone))
    again = CliRunner().invoke(
        dkim_app,
        ["keygen", "--selector", "nl2026", "--domain", "example.org", "--out", str(tmp_path)],
    )
    assert again.exit_code != 0  # never overwrites a key silently
    # The generated key signs mail that verifies against the printed record.
    signer = load_signer(DkimSettings(domain="example.org", selector="nl2026", key_file=key))
    assert signer is not None
    c = _compile("<p>%%NAME%%，您好</p>\n", "%%NAME%%，您好\n", signer)
    _id, msg = c.build(RECIPIENTS[1])
    assert dkim.verify(msg, dnsfunc=_dns({"nl2026._domainkey.example.org": record}))
    assert load_signer(DkimSettings()) is None


@pytest.mark.parametrize(
    "added",
    [
        b"Reply-To: attacker@evil.example\r\n",
        b"Subject: =?utf-8?b?5paw55qE5Li76aKY?=\r\n",
        b"To: someone-else@example.com\r\n",
        b"List-Unsubscribe: <https://evil.example/u>\r\n",
        b"Message-ID: <x@evil.example>\r\n",
        b"Content-Type: text/plain\r\n",
    ],
)
def test_a_header_added_after_signing_breaks_dkim(rendered, rsa_pem, added: bytes) -> None:  # type: ignore[no-untyped-def]
    compiled = _compile(*rendered, DkimSigner.from_pem("example.org", "s1", rsa_pem))
    dns = _dns({"s1._domainkey.example.org": dns_txt_record(rsa_pem)})
    _id, msg = compiled.build(RECIPIENTS[0])
    assert dkim.verify(msg, dnsfunc=dns)
    head, _, rest = msg.partition(b"\r\nFrom: ")
    for forged in (added + msg, head + b"\r\n" + added + b"From: " + rest):  # above and inside
        assert not dkim.verify(forged, dnsfunc=dns), added
