"""``newsletter doctor``: is this installation set up to send mail that arrives?

Each check gives ``ok``, ``warn`` or ``fail`` and, when not ok, what to fix, in
Chinese and English. The checks:

* **secret key**: set, and not the built-in development key;
* **base URL**: https (links, List-Unsubscribe and pixels go through it);
* **sender identity**: From address, bounce domain, List-Id domain and postal
  address are not the example placeholders;
* **DKIM**: a key is configured, and the public key published at
  ``<selector>._domainkey.<domain>`` is the configured key's;
* **alignment**: the From domain, the DKIM ``d=`` domain and the Return-Path
  (bounce) domain share an organisational domain (DMARC relaxed alignment);
* **SPF**: exactly one ``v=spf1`` record on the bounce domain;
* **DMARC**: a ``v=DMARC1`` record at ``_dmarc.<From domain>`` (or at its
  organisational domain), with a policy;
* **relay**: it answers EHLO and offers 8BITMIME, PIPELINING and SIZE.

DNS goes through ``NEWSLETTER_DNS_SERVER`` (``host`` or ``host:port``) when set,
else the system resolver, so the checks can be tested against a local server.
The organisational domain is approximated by the last two labels (three under a
two-letter country code's second level such as ``com.cn``), which is what the
public suffix list gives for the domains a publisher uses.
"""

from __future__ import annotations

import smtplib
from dataclasses import asdict, dataclass
from typing import Any

import dns.exception
import dns.resolver

from newsletter.core.config import get_settings
from newsletter.delivery.dkim import DkimSettings
from newsletter.delivery.dkim_keys import public_key_b64

__all__ = ["Check", "org_domain", "run_doctor"]

DEV_KEY = "dev-insecure-change-me"
PLACEHOLDER = ("example.org", "example.com", "example.net")
_CC_SECOND = {"com", "net", "org", "gov", "edu", "ac", "co"}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def org_domain(domain: str) -> str:
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _CC_SECOND:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _resolver() -> dns.resolver.Resolver:
    server = get_settings().dns_server
    if not server:
        return dns.resolver.Resolver()
    r = dns.resolver.Resolver(configure=False)
    host, _, port = server.partition(":")
    r.nameservers = [host]
    r.port = int(port or 53)
    r.lifetime = r.timeout = 3.0
    return r


def _txt(name: str) -> list[str] | None:
    """The TXT strings at ``name`` (joined per record); [] if none; None if DNS failed."""
    try:
        answer = _resolver().resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException:
        return None
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]  # type: ignore[attr-defined]


def _tags(record: str) -> dict[str, str]:
    out = {}
    for part in record.split(";"):
        k, _, v = part.strip().partition("=")
        if k:
            out[k.strip().lower()] = "".join(v.split())
    return out


def _secret() -> Check:
    key = get_settings().secret_key.get_secret_value()
    if not key or key == DEV_KEY:
        return Check("secret key", "fail", "the built-in development key is in use",
                     "set NEWSLETTER_SECRET_KEY to a long random value (openssl rand -hex 32) / "
                     "请设置随机的 NEWSLETTER_SECRET_KEY")  # fmt: skip
    if len(key) < 32:
        return Check("secret key", "warn", f"only {len(key)} characters",
                     "use at least 32 random characters / 密钥至少 32 个随机字符")  # fmt: skip
    return Check("secret key", "ok", "set")


def _base_url() -> Check:
    url = get_settings().base_url
    if not url.startswith("https://"):
        return Check("base URL", "fail", f"{url} is not https",
                     "set NEWSLETTER_BASE_URL to the public https address of the web app / "
                     "NEWSLETTER_BASE_URL 须为 https 地址")  # fmt: skip
    return Check("base URL", "ok", url)


def _identity() -> list[Check]:
    cfg = get_settings()
    out = []
    for name, value, var in (
        ("From address", cfg.from_address, "NEWSLETTER_FROM_ADDRESS"),
        ("bounce domain", cfg.bounce_domain, "NEWSLETTER_BOUNCE_DOMAIN"),
        ("List-Id domain", cfg.list_id_domain, "NEWSLETTER_LIST_ID_DOMAIN"),
    ):
        if value.lower().rstrip(".").endswith(PLACEHOLDER):
            out.append(Check(name, "fail", f"{value} is a placeholder",
                             f"set {var} to your own domain / 请将 {var} 设为自己的域名"))  # fmt: skip
        else:
            out.append(Check(name, "ok", value))
    if "示例" in cfg.postal_address or "example" in cfg.postal_address.lower():
        out.append(Check("postal address", "fail", "the placeholder address is in use",
                         "set NEWSLETTER_POSTAL_ADDRESS / 请设置真实的通信地址"))  # fmt: skip
    else:
        out.append(Check("postal address", "ok", cfg.postal_address))
    return out


def _dkim(dkim: DkimSettings) -> list[Check]:
    cfg = get_settings()
    from_domain = cfg.from_address.rpartition("@")[2].lower()
    if dkim.key_file is None or not dkim.domain or not dkim.selector:
        return [Check("DKIM", "fail", "no signing key is configured",
                      "run `newsletter dkim keygen`, publish the record, set NEWSLETTER_DKIM_* / "
                      "请生成并发布 DKIM 密钥")]  # fmt: skip
    try:
        _k, want = public_key_b64(dkim.key_file.read_bytes())
    except (OSError, ValueError) as exc:
        return [Check("DKIM", "fail", f"the key file cannot be read: {type(exc).__name__}",
                      "check NEWSLETTER_DKIM_KEY_FILE / 无法读取 DKIM 私钥")]  # fmt: skip
    name = f"{dkim.selector}._domainkey.{dkim.domain}"
    records = _txt(name)
    out: list[Check] = []
    if records is None:
        out.append(Check("DKIM", "warn", f"DNS lookup of {name} failed", "check the resolver"))
    elif not records:
        out.append(Check("DKIM", "fail", f"no TXT record at {name}",
                         f"publish the output of `newsletter dkim keygen` at {name} / "
                         f"请在 {name} 发布 DKIM 记录"))  # fmt: skip
    else:
        published = [_tags(r).get("p", "") for r in records if "p=" in r]
        if want in published:
            out.append(Check("DKIM", "ok", f"{name} holds the configured key"))
        else:
            out.append(Check("DKIM", "fail", f"{name} holds a different key than the one configured",
                             "publish the record of the key in NEWSLETTER_DKIM_KEY_FILE "
                             "(or configure the published key) / DNS 中的 DKIM 公钥与配置的私钥不符"))  # fmt: skip
    aligned = {org_domain(from_domain), org_domain(dkim.domain), org_domain(cfg.bounce_domain)}
    if len(aligned) == 1:
        out.append(Check("alignment", "ok",
                         f"From {from_domain}, DKIM d={dkim.domain}, Return-Path "
                         f"{cfg.bounce_domain} share {aligned.pop()}"))  # fmt: skip
    else:
        out.append(Check("alignment", "fail",
                         f"From {from_domain}, DKIM d={dkim.domain} and Return-Path "
                         f"{cfg.bounce_domain} are not one organisational domain",
                         "use the From domain (or a subdomain of it) for DKIM and the bounce "
                         "domain, or DMARC fails / From、DKIM 与退信域名须属同一主域"))  # fmt: skip
    return out


def _spf() -> Check:
    domain = get_settings().bounce_domain
    records = _txt(domain)
    if records is None:
        return Check("SPF", "warn", f"DNS lookup of {domain} failed", "check the resolver")
    spf = [r for r in records if r.lower().startswith("v=spf1")]
    if not spf:
        return Check("SPF", "fail", f"no SPF record on {domain}",
                     f"publish e.g. \"v=spf1 ip4:<relay address> -all\" on {domain} / "
                     f"请在 {domain} 发布 SPF 记录")  # fmt: skip
    if len(spf) > 1:
        return Check("SPF", "fail", f"{len(spf)} SPF records on {domain} (permerror)",
                     "merge them into one / SPF 记录只能有一条")  # fmt: skip
    if spf[0].split()[-1] in ("+all", "all"):
        return Check("SPF", "fail", f"{spf[0]} lets anyone send",
                     "end it with -all or ~all / SPF 不应以 +all 结尾")  # fmt: skip
    return Check("SPF", "ok", spf[0])


def _dmarc() -> Check:
    domain = get_settings().from_address.rpartition("@")[2].lower()
    for name in dict.fromkeys((f"_dmarc.{domain}", f"_dmarc.{org_domain(domain)}")):
        records = _txt(name)
        if records is None:
            return Check("DMARC", "warn", f"DNS lookup of {name} failed", "check the resolver")
        found = [r for r in records if r.upper().startswith("V=DMARC1")]
        if len(found) > 1:
            return Check("DMARC", "fail", f"{len(found)} DMARC records at {name}",
                         "keep one / DMARC 记录只能有一条")  # fmt: skip
        if found:
            policy = _tags(found[0]).get("p", "")
            if policy not in ("none", "quarantine", "reject"):
                return Check("DMARC", "fail", f"{name}: no valid p= policy",
                             "add p=none (then quarantine) / DMARC 缺少 p= 策略")  # fmt: skip
            return Check("DMARC", "ok", f"{name}: p={policy}")
    return Check("DMARC", "fail", f"no DMARC record at _dmarc.{domain}",
                 f"publish \"v=DMARC1; p=none; rua=mailto:…\" at _dmarc.{domain} "
                 "(Gmail and Yahoo require it for bulk senders) / 请发布 DMARC 记录")  # fmt: skip


def _relays() -> list[Check]:
    """With several relays (NEWSLETTER_RELAYS): each one connects, logs in and answers."""
    cfg = get_settings()
    if not cfg.relays:
        return [_relay()]
    from newsletter.delivery.relay_config import RelayConfigError, load_relays
    from newsletter.delivery.relay_probe import probe

    try:
        relays = load_relays(cfg)
    except RelayConfigError as exc:
        return [Check("relays", "fail", str(exc), "fix NEWSLETTER_RELAYS / 请修正发信服务器配置")]
    out = []
    for r in relays:
        ok, detail = probe(r)
        out.append(
            Check(f"relay {r.name}", "ok" if ok else "fail", f"{r.host}:{r.port} ({r.tls}): {detail}",
                  "" if ok else _relay_hint(detail))
        )  # fmt: skip
    return out


def _relay() -> Check:
    cfg = get_settings()
    if cfg.smtp_host == "maildir":
        return Check("relay", "warn", "messages are written to var/outbox (maildir)",
                     "set NEWSLETTER_SMTP_HOST to a real relay / 未配置发信服务器")  # fmt: skip
    try:
        smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=10)
        try:
            code, _ = smtp.ehlo()
            missing = [e for e in ("8bitmime", "pipelining", "size") if not smtp.has_extn(e)]
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    except (smtplib.SMTPException, OSError) as exc:
        return Check("relay", "fail", f"{cfg.smtp_host}:{cfg.smtp_port} does not answer "
                     f"({type(exc).__name__})", "check NEWSLETTER_SMTP_HOST/PORT / 发信服务器无法连接")  # fmt: skip
    if code != 250:
        return Check("relay", "fail", f"EHLO answered {code}", "check the relay")
    if "8bitmime" in missing and cfg.relay_8bitmime:
        return Check("relay", "fail", "the relay lacks 8BITMIME but NEWSLETTER_RELAY_8BITMIME "
                     "is on: bodies are re-encoded as base64 and may pass the clip budget",
                     "set NEWSLETTER_RELAY_8BITMIME=false, so the budget counts base64 / "
                     "发信服务器不支持 8BITMIME，请设置 NEWSLETTER_RELAY_8BITMIME=false")  # fmt: skip
    if missing:
        return Check("relay", "warn", f"the relay lacks {', '.join(m.upper() for m in missing)}",
                     "without 8BITMIME bodies are re-encoded as base64 (bigger, closer to "
                     "Gmail's clip); without PIPELINING sending is slower / 发信服务器缺少扩展")  # fmt: skip
    return Check("relay", "ok", f"{cfg.smtp_host}:{cfg.smtp_port}: 8BITMIME, PIPELINING, SIZE")


def run_doctor(dkim: DkimSettings | None = None) -> dict[str, Any]:
    """Every check; ``ok`` is False when any check failed."""
    checks = [_secret(), _base_url(), *_identity(), *_dkim(dkim or DkimSettings()), _spf(),
              _dmarc(), *_relays()]  # fmt: skip
    return {
        "ok": all(c.status != "fail" for c in checks),
        "checks": [c.as_dict() for c in checks],
    }


def _relay_hint(detail: str) -> str:
    """What to look at when a relay's probe failed; a certificate that did not check out
    names the two settings that decide it."""
    if "FileNotFound" in detail or "IsADirectory" in detail or "PermissionError" in detail:
        return (
            "找不到或无法读取 tls_ca_file / tls_ca_file cannot be read: check its path and "
            "that it is a PEM certificate"
        )
    if "NotSupported" in detail:
        return (
            "发信服务器不提供 STARTTLS：检查 tls 模式（starttls 或 ssl）/ the relay does not "
            "offer STARTTLS: check its tls mode (starttls, or ssl for implicit TLS)"
        )
    if "SSL" in detail or "Cert" in detail:
        return (
            "发信服务器的 TLS 证书未通过校验：检查 tls_ca_file（私有 CA 或自签证书）/ its TLS "
            "certificate did not verify: set tls_ca_file for a private CA or a self-signed "
            "certificate (tls_verify = false only on purpose)"
        )
    return "check its host, port, TLS mode and login / 发信服务器无法连接"
