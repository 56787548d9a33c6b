"""The relays' configuration and routing.

``NEWSLETTER_RELAYS`` (see :class:`RelayConfig`) names each relay with its host, port,
TLS mode, credentials, rate limit and weight, and optionally the From domains or
publications it is reserved for. Without it the single ``smtp_*`` relay of the settings
is the one relay, named ``default``.

Routing: the relays reserved for a message's From domain or publication carry it; when
none is, the unreserved ("general") relays do.

Passwords are kept in :class:`~pydantic.SecretStr` and never appear in logs, reports,
errors or the console.
"""

from __future__ import annotations

import json
import re
import threading
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from newsletter.core.config import Settings, get_settings
from newsletter.core.errors import ConfigError

__all__ = [
    "RelayConfig",
    "RelayConfigError",
    "load_relays",
    "parse_relays",
    "public_relays",
    "route",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")
_DOMAIN = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)+$"
)


class RelayConfigError(ConfigError):
    """The relay configuration cannot be used; the message is one line (en / 中文)."""


class RelayConfig(BaseModel):
    """One relay. ``tls``: none, starttls or ssl (implicit TLS, usually port 465)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    host: str
    port: int = Field(25, ge=1, le=65535)
    tls: Literal["none", "starttls", "ssl"] = "none"
    #: the relay's certificate is verified and must name ``host`` (a private CA or a
    #: self-signed certificate: ``tls_ca_file``); False: not checked at all
    tls_verify: bool = True
    tls_ca_file: str = Field("", max_length=4096)
    username: str = Field("", max_length=320)
    password: SecretStr = SecretStr("")
    #: messages per second through this relay, shared by all workers; 0 = unlimited
    rate: float = Field(0.0, ge=0, le=100_000)
    weight: float = Field(1.0, gt=0, le=1000)
    #: deadlines in seconds (unset: the ``smtp_*_timeout`` settings): the greeting and
    #: each command, the TCP connect, the reply to the final dot
    timeout: float | None = Field(None, gt=0, le=600)
    connect_timeout: float | None = Field(None, gt=0, le=600)
    data_timeout: float | None = Field(None, gt=0, le=600)
    #: reserved for these From domains / publication slugs (empty: a general relay)
    from_domains: tuple[str, ...] = ()
    publications: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("lower-case letters, digits, '.', '_' or '-', at most 64")
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not _HOST.match(v):
            raise ValueError("a host name or IP address")
        return v

    @field_validator("username")
    @classmethod
    def _user(cls, v: str) -> str:
        if any(c in v for c in "\r\n\x00"):
            raise ValueError("no line breaks")
        return v

    @field_validator("from_domains")
    @classmethod
    def _domains(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(d.strip().lower() for d in v)
        for d in out:
            if not _DOMAIN.match(d):
                raise ValueError("each must be a domain name such as brief.example.cn")
        return out

    @field_validator("publications")
    @classmethod
    def _pubs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not p or len(p) > 64 or any(c.isspace() for c in p):
                raise ValueError("each must be a publication slug")
        return v

    @property
    def general(self) -> bool:
        return not self.from_domains and not self.publications

    def deadlines(self, cfg: Settings | None = None) -> tuple[float, float, float]:
        """(connect, greeting and each command, final dot) in seconds."""
        cfg = cfg or get_settings()
        return (
            self.connect_timeout or cfg.smtp_connect_timeout,
            self.timeout or cfg.smtp_timeout,
            self.data_timeout or cfg.smtp_data_timeout,
        )

    def public(self) -> dict[str, Any]:
        """Everything but the password (whether one is set is shown)."""
        data = self.model_dump(mode="json", exclude={"password"})
        data["password_set"] = bool(self.password.get_secret_value())
        return data


def _err(what: str) -> RelayConfigError:
    line = " ".join(what.split())[:300]
    return RelayConfigError(f"NEWSLETTER_RELAYS: {line} / 发信服务器（relays）配置有误：{line}")


def _read_source(raw: Any) -> Any:
    """The relay list as data: JSON text, a file path, or data (TOML/settings)."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if not text:
        return None
    if text[0] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _err(
                f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml", ".yaml", ".yml"):
        raise _err("expected a JSON list or the path of a .json, .toml or .yaml file")
    try:
        body = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _err(f"cannot read {path}: {type(exc).__name__}") from None
    try:
        if suffix == ".json":
            data = json.loads(body)
        elif suffix == ".toml":
            data = tomllib.loads(body)
        else:
            import yaml

            data = yaml.safe_load(body)
    except Exception as exc:  # every parser's error: one line, no content echoed
        raise _err(f"{path} is not valid {suffix[1:].upper()} ({type(exc).__name__})") from None
    if isinstance(data, dict) and "relays" in data:
        data = data["relays"]
    return data


def parse_relays(raw: Any) -> list[RelayConfig]:
    """Validate a relay list (JSON text, path, list of objects or {name: object}).

    Returns the relays, or raises :class:`RelayConfigError` with one line that
    names the relay and field at fault and never echoes a value.
    """
    data = _read_source(raw)
    if isinstance(data, dict):
        items: list[Any] = []
        for name, body in data.items():
            if not isinstance(body, dict):
                raise _err(f"relay {str(name)[:64]!r} must be a table of settings")
            items.append({"name": name, **body})
        data = items
    if not isinstance(data, list) or not data:
        raise _err("expected a non-empty list of relays")
    relays: list[RelayConfig] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise _err(f"relays[{i}] must be an object with name, host, port, …")
        try:
            relays.append(RelayConfig.model_validate(item))
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            label = item.get("name") if isinstance(item.get("name"), str) else None
            who = f"relay {label[:64]!r}" if label and _NAME.match(label) else f"relays[{i}]"
            raise _err(f"{who}: {where or 'value'}: {first.get('msg', 'invalid')}") from None
    names = [r.name for r in relays]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _err(f"relay name {dup[0]!r} is used twice")
    if not any(r.general for r in relays):
        raise _err(
            "every relay is reserved (from_domains/publications): "
            "at least one must carry everything else"
        )
    return relays


def _default_relay(cfg: Settings) -> RelayConfig:
    return RelayConfig(
        name="default",
        host=cfg.smtp_host,
        port=cfg.smtp_port,
        tls="starttls" if cfg.smtp_starttls else "none",
        tls_verify=cfg.smtp_tls_verify,
        tls_ca_file=cfg.smtp_tls_ca_file,
        username=cfg.smtp_username,
        password=cfg.smtp_password,
        rate=0.0,
        weight=1.0,
        timeout=cfg.smtp_timeout,
        connect_timeout=cfg.smtp_connect_timeout,
        data_timeout=cfg.smtp_data_timeout,
    )


_loaded: tuple[str, list[RelayConfig]] | None = None
_load_lock = threading.Lock()


def load_relays(cfg: Settings | None = None) -> list[RelayConfig]:
    """The configured relays (cached per settings object and value)."""
    global _loaded
    cfg = cfg or get_settings()
    # Keyed by the values themselves (never by the settings object's id: ids are reused).
    key = repr(
        (
            cfg.relays,
            cfg.smtp_host,
            cfg.smtp_port,
            cfg.smtp_username,
            cfg.smtp_password.get_secret_value(),
            cfg.smtp_starttls,
            cfg.smtp_tls_verify,
            cfg.smtp_tls_ca_file,
            cfg.smtp_timeout,
            cfg.smtp_connect_timeout,
            cfg.smtp_data_timeout,
        )
    )
    with _load_lock:
        if _loaded is not None and _loaded[0] == key:
            return _loaded[1]
    raw = cfg.relays
    if raw is None or (isinstance(raw, str) and not raw.strip()) or raw == []:
        relays = [_default_relay(cfg)]
    else:
        relays = parse_relays(raw)
    with _load_lock:
        _loaded = (key, relays)
    return relays


def public_relays(cfg: Settings) -> list[dict[str, Any]] | str:
    """The relays without passwords (``config show``); a bad config: its error line."""
    try:
        return [r.public() for r in load_relays(cfg)]
    except RelayConfigError as exc:
        return str(exc)


def route(
    relays: list[RelayConfig], from_domain: str, publication: str | None
) -> list[RelayConfig]:
    """The relays that may carry a message of this From domain and publication."""
    dom = from_domain.lower()
    reserved = [
        r
        for r in relays
        if dom in r.from_domains or (publication is not None and publication in r.publications)
    ]
    return reserved or [r for r in relays if r.general]
