"""DKIM keys: generating a key pair, reading a private key, its DNS TXT record, and the
``newsletter dkim keygen|record`` commands (files only under --out, named by DNS labels)."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from newsletter.core.errors import ConfigError

__all__ = [
    "dkim_app",
    "dns_txt_record",
    "dns_zone_line",
    "generate_ed25519_key",
    "generate_rsa_key",
    "load_private",
    "public_key_b64",
]


def generate_rsa_key(bits: int = 2048) -> bytes:
    """A new RSA private key, PKCS#8 PEM (unencrypted; store it mode 0600)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_ed25519_key() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private(pem: bytes) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise ConfigError("DKIM key must be an RSA or Ed25519 private key (PEM)")


def public_key_b64(private_pem: bytes) -> tuple[str, str]:
    """(k=, p=) for the DNS record: RSA as SubjectPublicKeyInfo DER, Ed25519 raw (RFC 8463)."""
    key = load_private(private_pem)
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "rsa", base64.b64encode(der).decode()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519", base64.b64encode(raw).decode()


def dns_txt_record(private_pem: bytes) -> str:
    """The TXT record value to publish at ``<selector>._domainkey.<domain>``."""
    k, p = public_key_b64(private_pem)
    return f"v=DKIM1; k={k}; p={p}"


def dns_zone_line(selector: str, domain: str, private_pem: bytes) -> str:
    """A zone-file line; the value is split into strings of at most 255 octets (RFC 1035)."""
    rec = dns_txt_record(private_pem)
    strings = " ".join(f'"{rec[i : i + 250]}"' for i in range(0, len(rec), 250))
    return f"{selector}._domainkey.{domain.rstrip('.')}. 3600 IN TXT ( {strings} )"


dkim_app = typer.Typer(
    help="DKIM keys: generate a key pair and print its DNS record", no_args_is_help=True
)


def _write_private(path: Path, pem: bytes, force: bool) -> None:
    if path.exists() and not force:
        raise typer.BadParameter(f"{path} exists; pass --force to replace it")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


_DNS_NAME = re.compile(
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*"
)


@dkim_app.command("keygen")
def keygen(
    selector: str = typer.Option(..., help="DKIM selector, e.g. nl2026"),
    domain: str = typer.Option(..., help="signing domain (d=), aligned with the From domain"),
    out: Path = typer.Option(..., help="directory for the private key(s) and records"),
    algorithm: str = typer.Option("rsa", help="rsa, ed25519 or both"),
    bits: int = typer.Option(2048, help="RSA key size"),
    force: bool = typer.Option(False, help="overwrite existing key files"),
) -> None:
    """Generate a DKIM key pair and print the DNS TXT record to publish."""
    if algorithm not in ("rsa", "ed25519", "both"):
        raise typer.BadParameter("--algorithm must be rsa, ed25519 or both")
    if bits < 2048 and algorithm != "ed25519":
        raise typer.BadParameter("RSA keys must be at least 2048 bits")
    # Both name files under --out: DNS labels only, so no path can leave it.
    if not _DNS_NAME.fullmatch(selector):
        raise typer.BadParameter(
            "--selector 须为 DNS 标签 / must be DNS labels (letters, digits, -, _)"
        )
    if not _DNS_NAME.fullmatch(domain.rstrip(".")):
        raise typer.BadParameter("--domain 须为域名 / must be a domain name")
    out.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, str, Path]] = []
    if algorithm in ("rsa", "both"):
        made.append((selector, "rsa", out / f"{selector}.{domain}.rsa.pem"))
    if algorithm in ("ed25519", "both"):
        ed_sel = f"{selector}-ed" if algorithm == "both" else selector
        made.append((ed_sel, "ed25519", out / f"{ed_sel}.{domain}.ed25519.pem"))
    for sel, kind, path in made:
        pem = generate_rsa_key(bits) if kind == "rsa" else generate_ed25519_key()
        _write_private(path, pem, force)
        record = dns_txt_record(pem)
        zone = dns_zone_line(sel, domain, pem)
        (out / f"{sel}.{domain}.{kind}.txt").write_text(zone + "\n", encoding="utf-8")
        typer.echo(f"# {kind} private key: {path} (mode 0600)")
        typer.echo(f"# publish as TXT at {sel}._domainkey.{domain}")
        typer.echo(record)
        typer.echo(f"# zone file form:\n{zone}")
    typer.echo(
        "# then set NEWSLETTER_DKIM_DOMAIN, NEWSLETTER_DKIM_SELECTOR, NEWSLETTER_DKIM_KEY_FILE"
        " (and NEWSLETTER_DKIM_ED25519_SELECTOR / _ED25519_KEY_FILE)"
    )


@dkim_app.command("record")
def record(
    key: Path = typer.Option(..., help="private key PEM"),
    selector: str = typer.Option(...),
    domain: str = typer.Option(...),
) -> None:
    """Print the DNS TXT record for an existing private key."""
    pem = key.read_bytes()
    typer.echo(dns_txt_record(pem))
    typer.echo(dns_zone_line(selector, domain, pem))
