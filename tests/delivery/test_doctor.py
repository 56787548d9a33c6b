"""`newsletter doctor` against a local DNS server (dnslib): good records pass, and
every mistake is named with its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dnslib.server import DNSServer
from dnslib.zoneresolver import ZoneResolver
from pydantic import SecretStr
from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.core.config import Settings, reset_settings
from newsletter.delivery.dkim_keys import dns_zone_line, generate_rsa_key
from newsletter.delivery.doctor import org_domain
from newsletter.devtools.sink import free_port

DOMAIN = "brief.example.cn"


class _Quiet:
    """dnslib logs every query to stdout; the CLI's JSON must stay clean."""

    def __getattr__(self, name: str) -> object:
        return lambda *a, **k: None


def _serve(zone: str) -> DNSServer:
    port = free_port()
    server = DNSServer(ZoneResolver(zone), address="127.0.0.1", port=port, logger=_Quiet())
    server.start_thread()
    return server


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    pem = generate_rsa_key(1024)
    other = generate_rsa_key(1024)
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem)
    return path, pem, other


def _zone(key_pem: bytes, *, spf: list[str], dmarc: str | None) -> str:
    lines = [dns_zone_line("nl2026", DOMAIN, key_pem)]
    lines += [f'{DOMAIN}. 300 IN TXT "{r}"' for r in spf]
    if dmarc:
        lines.append(f'_dmarc.{DOMAIN}. 300 IN TXT "{dmarc}"')
    return "\n".join(lines) + "\n"


def _run(
    settings: Settings, zone: str, key: Path, monkeypatch: pytest.MonkeyPatch, **over: object
) -> tuple[int, dict[str, dict[str, str]]]:
    server = _serve(zone)
    try:
        values = {
            "dns_server": f"127.0.0.1:{server.server.server_address[1]}",
            "secret_key": "doctor-key-0123456789abcdef-0123456789",
            "base_url": "https://news.brief.example.cn",
            "from_address": f"news@{DOMAIN}",
            "bounce_domain": DOMAIN,
            "list_id_domain": DOMAIN,
            "postal_address": "北京市海淀区中关村大街 1 号",
            "smtp_host": "maildir",
            **over,
        }
        values["secret_key"] = SecretStr(str(values["secret_key"]))
        reset_settings(settings.model_copy(update=values))
        monkeypatch.setenv("NEWSLETTER_DKIM_DOMAIN", DOMAIN)
        monkeypatch.setenv("NEWSLETTER_DKIM_SELECTOR", "nl2026")
        monkeypatch.setenv("NEWSLETTER_DKIM_KEY_FILE", str(key))
        r = CliRunner().invoke(app, ["doctor", "--json"])
    finally:
        server.stop()
    assert r.stdout.strip().startswith("{"), (r.output[:800], r.exception)
    out = json.loads(r.stdout)
    return r.exit_code, {c["name"]: c for c in out["checks"]}


def test_a_good_setup_passes(sqlite_settings, keys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path, pem, _ = keys
    zone = _zone(pem, spf=["v=spf1 ip4:192.0.2.10 -all"], dmarc="v=DMARC1; p=quarantine")
    code, checks = _run(sqlite_settings, zone, path, monkeypatch)
    bad = {n: c for n, c in checks.items() if c["status"] == "fail"}
    assert bad == {} and code == 0
    assert checks["DKIM"]["status"] == "ok" and checks["DMARC"]["detail"].endswith("quarantine")


def test_every_mistake_is_named(sqlite_settings, keys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path, _pem, other = keys
    zone = _zone(other, spf=["v=spf1 +all", "v=spf1 -all"], dmarc=None)  # wrong key published
    code, checks = _run(
        sqlite_settings,
        zone,
        path,
        monkeypatch,
        secret_key="dev-insecure-change-me",
        base_url="http://news.brief.example.cn",
        bounce_domain="bounces.other.example.net",
        postal_address="中国北京市海淀区示例路 1 号 100000",
        list_id_domain="newsletter.example.org",
    )
    assert code == 1
    failed = {n for n, c in checks.items() if c["status"] == "fail"}
    assert {"secret key", "base URL", "DKIM", "alignment", "SPF", "DMARC", "postal address",
            "List-Id domain", "bounce domain"} <= failed  # fmt: skip
    assert "different key" in checks["DKIM"]["detail"]
    for name in failed:
        fix = checks[name]["fix"]
        assert fix and any("\u4e00" <= ch <= "\u9fff" for ch in fix), (name, fix)  # zh and en


def test_missing_records_and_a_silent_relay(sqlite_settings, keys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path, _pem, _ = keys
    code, checks = _run(sqlite_settings, "", path, monkeypatch, smtp_host="127.0.0.1",
                        smtp_port=free_port())  # fmt: skip
    assert code == 1
    assert "no TXT record" in checks["DKIM"]["detail"]
    assert "no SPF record" in checks["SPF"]["detail"]
    assert "no DMARC record" in checks["DMARC"]["detail"]
    assert checks["relay"]["status"] == "fail" and "does not answer" in checks["relay"]["detail"]


def test_the_relay_extensions_are_checked(sqlite_settings, keys, monkeypatch, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, _sink = smtp_sink
    path, pem, _ = keys
    zone = _zone(pem, spf=["v=spf1 -all"], dmarc="v=DMARC1; p=none")
    _code, checks = _run(sqlite_settings, zone, path, monkeypatch, smtp_host="127.0.0.1",
                         smtp_port=port)  # fmt: skip
    relay = checks["relay"]
    # aiosmtpd offers 8BITMIME, PIPELINING (the sink adds it) and SIZE
    assert relay["status"] == "ok" and "8BITMIME, PIPELINING, SIZE" in relay["detail"], relay


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("news.brief.example.cn", "example.cn"),
        ("a.b.example.com.cn", "example.com.cn"),
        ("mail.example.org", "example.org"),
        ("example.org", "example.org"),
    ],
)
def test_org_domain(domain: str, org: str) -> None:
    assert org_domain(domain) == org
