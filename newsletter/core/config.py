"""One settings object for the whole product.

Values come, in increasing priority, from the defaults below, an optional
``newsletter.toml`` (path in ``NEWSLETTER_CONFIG``, else ``./newsletter.toml``)
and environment variables prefixed ``NEWSLETTER_``.

The defaults are the *embedded mode*: a SQLite file under ``./var/``, tasks
run in-process, and mail goes to a local SMTP sink that ``newsletter demo``
starts (or to a maildir outbox when ``smtp_host`` is ``maildir``).  Pointing
``database_url`` at PostgreSQL, ``broker_url`` at Redis and ``smtp_host`` at a
relay switches to production with no code change.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "DEFAULT_SECRET_KEY",
    "Settings",
    "get_settings",
    "require_secret_key",
    "reset_settings",
]

#: The built-in key of the embedded mode. Anyone can read it here, so it signs
#: nothing outside the embedded mode (:func:`require_secret_key`).
DEFAULT_SECRET_KEY = "dev-insecure-change-me"
#: Outside the embedded mode: bytes (UTF-8, surrounding whitespace stripped) of the
#: signing key and of every old key, and of the metrics token.
MIN_SECRET_KEY_LENGTH = 32
MIN_METRICS_TOKEN_LENGTH = 24
#: Values the project itself prints (the built-in key, the placeholders of
#: deploy/systemd/newsletter.env.example): a secret containing one is refused.
PRINTED_SECRETS = (DEFAULT_SECRET_KEY, "change-me")


def _toml_path() -> Path:
    return Path(os.environ.get("NEWSLETTER_CONFIG", "newsletter.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSLETTER_", extra="ignore")

    #: Working directory for the embedded mode (SQLite file, outbox, renders).
    var_dir: Path = Path("var")
    #: The sealed issues' blob store (``sha256/<aa>/<hash>`` under it). Every process that
    #: approves, sends or publishes must see the same one. Empty means ``{var_dir}/blobs``.
    blob_dir: Path | None = None
    #: SQLAlchemy URL. Empty means ``sqlite:///{var_dir}/newsletter.db``.
    database_url: str = ""
    #: Celery broker. Empty means tasks run in-process (embedded mode).
    broker_url: str = ""
    #: Redis for shared state (rate limits, event stream, WeChat token). Empty: in-process.
    redis_url: str = ""
    #: Prefix of every Redis key this instance uses (lets tests share one server).
    redis_prefix: str = "nl:"

    #: SMTP relay. ``maildir`` writes messages to ``{var_dir}/outbox`` instead.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    #: The relay's TLS certificate is verified (against the system's authorities, or
    #: ``smtp_tls_ca_file``) and must name ``smtp_host``; False turns that off.
    smtp_tls_verify: bool = True
    smtp_tls_ca_file: str = ""
    #: Every wait on a relay has a deadline (docs/delivery.md, "Hung relays"): the TCP
    #: connect, the greeting and each command (``smtp_timeout``), and the reply to the
    #: final dot. A relay that misses one is taken out of service at once.
    smtp_connect_timeout: float = Field(default=10.0, gt=0, le=600)
    smtp_timeout: float = Field(default=30.0, gt=0, le=600)
    smtp_data_timeout: float = Field(default=30.0, gt=0, le=600)
    smtp_pool_size: int = 4

    #: Several named relays (docs/delivery.md, "Relays"): a JSON list of objects, a TOML
    #: ``[[relays]]`` array in newsletter.toml, or the path of a .json/.toml/.yaml file.
    #: Empty: the one relay above, named "default". Parsed by delivery/relay_config.py.
    relays: Any = None
    #: A relay is taken out after this many 4xx replies within ``relay_failure_window``
    #: seconds (a connection failure takes it out at once); it is probed and brought back.
    relay_failure_burst: int = 10
    relay_failure_window: int = 60
    #: Warm-up (docs/delivery.md, "Warm-up"): the default ramp, messages per day per sending
    #: domain, and the domains warmed up, e.g. {"brief.example.cn": {"start": "2026-12-01",
    #: "shares": {"gmail.com": 0.3}}}; `newsletter warmup set` stores plans that override these.
    warmup_schedule: list[int] = Field(
        default_factory=lambda: [50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000]
    )
    warmup_domains: dict[str, Any] = Field(default_factory=dict)
    #: Warm-up days begin at midnight in this time zone.
    warmup_timezone: str = "Asia/Shanghai"

    #: Public base URL of the web app (pixel, click, unsubscribe, archive).
    base_url: str = "http://127.0.0.1:8000"
    #: Secret for signed tokens. Rotation: put old keys in ``old_secret_keys``.
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    old_secret_keys: list[SecretStr] = Field(default_factory=list)

    #: Sender identity defaults (a publication may override them).
    from_name: str = "政策周报"
    from_address: str = "newsletter@example.org"
    bounce_domain: str = "example.org"
    list_id_domain: str = "newsletter.example.org"
    postal_address: str = "中国北京市海淀区示例路 1 号 100000"

    #: Delivery engine.
    batch_size: int = 200
    #: A claimed batch's lease; a live worker renews it every third (a heartbeat thread),
    #: so a dead worker's rows come back within this many seconds.
    lease_seconds: int = 20
    #: Messages marked ``sending`` together in one statement, sent one after another on
    #: one connection, their outcomes written together. This is the at-risk bound k: a
    #: crash leaves at most this many deliveries of a connection uncertain (re-sent and
    #: counted at risk), and a pause or cancel lets at most this many more go out per
    #: connection. 1 gives one statement per message and one message of uncertainty.
    send_group_size: int = Field(default=25, ge=1, le=100)
    #: A batch that loses its database keeps the outcomes it has not recorded in memory,
    #: reconnects with backoff for up to this many seconds and records them (fenced by its
    #: claim); only rows another worker took over meanwhile are re-sent, at risk.
    db_retry_seconds: float = Field(default=60.0, ge=0, le=3600)
    #: The CPU niceness a Celery worker takes on at start (its processes inherit it): a
    #: bulk send yields the CPU to the web console, the pixel server, PostgreSQL and a
    #: local relay on the same host, which then answer promptly. 0 keeps the priority the worker was started with; a
    #: worker started nicer than this stays so.
    worker_nice: int = Field(default=5, ge=0, le=19)
    #: A sending send with no lease alive and no message sent for this long is revived by the tick.
    stall_seconds: int = 60
    max_attempts: int = 5
    #: Suppress an address whose deliveries failed (soft bounces to the last attempt)
    #: in this many consecutive sends.
    soft_bounce_sends: int = 3
    rate_per_second: float = 0.0  # per sender identity; 0 = unlimited
    #: Per destination domain, e.g. {"qq.com": 20, "163.com": 10} (messages per second).
    domain_rates: dict[str, float] = Field(default_factory=dict)
    #: Waits up to this long for a rate-limit token; longer waits defer the delivery.
    max_throttle_sleep: float = 2.0
    #: Pause a send automatically when this share of a batch fails (4xx/5xx/connection).
    auto_pause_error_rate: float = 0.5
    auto_pause_min_attempts: int = 20
    #: A send auto-paused because the relay could not be reached probes it, first after
    #: ``relay_probe_seconds`` then with doubling waits (at most 5 minutes apart), and
    #: resumes by itself when it answers; after ``auto_resume_limit_seconds`` it stays
    #: paused for a person to decide.
    relay_probe_seconds: float = 5.0
    #: A send auto-paused because the relay answered mostly 4xx (greylisting, a rate
    #: limit, a full queue) is probed the same way with a test RCPT (to ``probe_rcpt``,
    #: else one of the send's deferred readers) and resumes when the relay accepts it.
    #: False: such a pause waits for a person.
    auto_resume_4xx: bool = True
    probe_rcpt: str = ""
    auto_resume_limit_seconds: int = 1800
    #: Alerts (auto-pause, failure, …) go to the audit log and the console, to this
    #: webhook (JSON, WeCom/DingTalk/Slack style) and by mail to ``ops_emails`` through
    #: ``alert_smtp_host`` when set: an alert about the relay never depends on that relay.
    #: Let email sends start with a public http base URL (local use only): otherwise an
    #: email send refuses to start, since List-Unsubscribe would not be https.
    allow_http_links: bool = False
    #: Feedback-loop (FBL) addresses that `bounces serve` accepts besides bounces+…@ and
    #: unsubscribe+…@, e.g. ["fbl@brief.example.cn"]; their ARF reports are applied.
    feedback_addresses: list[str] = Field(default_factory=list)
    #: Bearer token for GET /metrics (Prometheus); empty: the endpoint is off on the web app.
    metrics_token: SecretStr = SecretStr("")
    #: HTTP Basic password of the inbound bounce webhook (``/webhooks/postmark``; read here
    #: only to hold it to the secrets rule: ``NEWSLETTER_WEBHOOK_PASSWORD``).
    webhook_password: SecretStr = SecretStr("")
    #: Workers, beat and the ingester serve /metrics, /healthz and /readyz on this port
    #: (+0 worker, +1 beat, +2 ingester) and host; 0: off.
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    #: DNS server for `newsletter doctor` (``host`` or ``host:port``); empty: the system's.
    dns_server: str = ""
    alert_webhook_url: str = ""
    #: An alert identical to one of the last ``alert_dedupe_seconds`` (same kind, same
    #: send or relay, same reason) is not sent again; anything else always is.
    alert_dedupe_seconds: float = Field(default=60.0, ge=0, le=86400)
    #: Event webhooks (console → Webhooks) go to public addresses only; true lets an
    #: admin point them at internal ones too (an intranet CRM).
    webhook_allow_private: bool = False
    alert_smtp_host: str = ""
    alert_smtp_port: int = 25
    email_budget_bytes: int = 100_000
    #: Does the relay accept 8-bit bodies (EHLO 8BITMIME)? When not, the HTML part goes
    #: out as base64 (a third bigger), so the budget is counted on the encoded size
    #: and the digest is chosen when base64 would pass the clip. `doctor` checks it.
    relay_8bitmime: bool = True
    #: Parallel batch chains per send (Celery mode).
    send_parallelism: int = 4
    #: Scheduler tick period in seconds, and how late a missed slot may still start.
    tick_seconds: int = 15
    grace_seconds: int = 6 * 3600

    #: Double opt-in: link lifetime, and limits that stop list-bombing.
    confirm_ttl_hours: int = 72
    subscribe_per_ip_per_hour: int = 5
    subscribe_per_address_per_day: int = 1
    subscribe_global_per_hour: int = 300

    #: Where ops notifications go (send started/finished/paused/failed, missing issue).
    ops_emails: list[str] = Field(default_factory=list)

    #: Open/click tracking.
    track_opens: bool = True
    track_clicks: bool = True

    #: Sites that may show the subscribe form in an <iframe> (/subscribe/<list>/embed),
    #: e.g. ["https://www.example.cn"]. Empty: only this site may frame it.
    embed_origins: list[str] = Field(default_factory=list)
    #: Put the subscribe QR code under the WeChat headline article's email-version line.
    wechat_subscribe_qr: bool = False

    #: Source feeds for `newsletter issue from-feeds` (a YAML file; see newsletter/issues/feeds.py).
    feeds_file: str = ""

    #: Console single sign-on (OpenID Connect). Off while the issuer is empty. The
    #: provider must list ``<base_url>/console/sso/callback`` as a redirect URI.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_scopes: str = "openid email profile"
    #: The identity provider may be reached on private addresses (an intranet IdP): for
    #: discovery, tokens and keys. Off, every one of its addresses must be public.
    oidc_allow_private: bool = False
    #: The claim that carries the user's groups or roles (a string or a list).
    oidc_role_claim: str = "roles"
    #: Claim value -> console role, e.g. {"newsletter-admins": "admin"}. Empty: the
    #: claim must name a console role itself. No match: the login is refused.
    oidc_role_map: dict[str, str] = Field(default_factory=dict)
    #: The login button's label.
    oidc_label: str = "单点登录 / Single sign-on"
    #: Local (password) accounts. An admin can also turn them off in the console; this
    #: setting is the break-glass floor: when false they stay off whatever the console says.
    local_login: bool = True
    #: Roles whose local accounts must use a second factor (TOTP) until an admin changes
    #: it under Settings → Users (the console's choice, once made, wins). Comma-separated.
    two_factor_roles: str = "admin,ops"

    @field_validator("embed_origins", mode="after")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        """Origins go into a Content-Security-Policy header: scheme://host[:port] only."""
        # ASCII only (a header carries Latin-1; \d would take any script's digits), a port
        # of 1-65535, and a wildcard only below a registrable name (not "*.cn").
        shape = re.compile(
            r"https?://(?:(\*\.)(?=[A-Za-z0-9-]+\.[A-Za-z0-9-]))?"
            r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::([0-9]{1,5}))?",
            re.ASCII,
        )
        for origin in value:
            m = shape.fullmatch(origin)
            if m is None or (m.group(2) is not None and not 0 < int(m.group(2)) < 65536):
                raise ValueError(
                    f"embed_origins: {origin[:60]!r} 不是 scheme://host[:port] 形式的来源 / "
                    "is not an origin of the form scheme://host[:port]"
                )
        return value

    @field_validator(
        "from_name",
        "from_address",
        "bounce_domain",
        "list_id_domain",
        "postal_address",
        mode="before",
    )
    @classmethod
    def _one_line(cls, value: object) -> object:
        """Header-bound settings: line breaks and control characters go (no header injection)."""
        from newsletter.core.safety.headers import clean_text

        return clean_text(value) if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # -- derived values -------------------------------------------------
    @property
    def html_budget_bytes(self) -> int:
        """The raw HTML budget: ``email_budget_bytes`` as the relay will encode it.

        base64 turns 3 bytes into 4 characters, in lines of 76 plus CRLF.
        """
        if self.relay_8bitmime:
            return self.email_budget_bytes
        return int(self.email_budget_bytes * 3 / 4 * 76 / 78)

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.var_dir / 'newsletter.db'}"

    @property
    def embedded(self) -> bool:
        """True when tasks run in-process (no broker configured)."""
        return not self.broker_url

    @property
    def embedded_mode(self) -> bool:
        """SQLite, tasks in-process and no Redis: the no-setup mode of ``make demo``."""
        return self.db_url.startswith("sqlite") and not self.broker_url and not self.redis_url

    def secret_key_problem(self) -> str | None:
        """Why the secrets may not be used here (one line, zh/en), or None.

        Outside the embedded mode the signing key, every old key kept for rotation, the
        metrics token and the inbound webhook password (the last two when set) must each
        be a real secret: not the built-in development key (nor a variant of it), no
        surrounding whitespace, long enough, and not a run of a few repeated characters."""
        if self.embedded_mode:
            return None
        named = [("NEWSLETTER_SECRET_KEY", self.secret_key.get_secret_value())]
        named += [
            (f"NEWSLETTER_OLD_SECRET_KEYS[{i}]", k.get_secret_value())
            for i, k in enumerate(self.old_secret_keys)
        ]
        for name, key in named:
            problem = _weak_secret(name, key, MIN_SECRET_KEY_LENGTH)
            if problem:
                return problem
        tokens = [
            ("NEWSLETTER_METRICS_TOKEN", self.metrics_token.get_secret_value()),
            ("NEWSLETTER_WEBHOOK_PASSWORD", self.webhook_password.get_secret_value()),
        ]
        for name, token in tokens:
            problem = token and _weak_secret(name, token, MIN_METRICS_TOKEN_LENGTH)
            if problem:
                return problem
        return None

    @property
    def outbox_dir(self) -> Path:
        return self.var_dir / "outbox"

    def secrets(self) -> list[bytes]:
        """The signing keys, current first."""
        keys = [self.secret_key.get_secret_value()]
        keys += [k.get_secret_value() for k in self.old_secret_keys]
        if not self.embedded_mode:  # the public development key never verifies anything here
            keys = [k for k in keys if DEFAULT_SECRET_KEY not in k] or keys[:1]
        return [k.encode() for k in keys]

    def public_dict(self) -> dict[str, Any]:
        """Settings with secrets masked, for ``newsletter config show``."""
        data = self.model_dump(mode="json")
        data["relays"] = _mask_passwords(self.relays)  # relay passwords are never shown
        return data


def _mask_passwords(value: Any) -> Any:
    """A relay configuration with every ``password`` value replaced by ``***``."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            return "<not valid JSON>"
    if isinstance(value, dict):
        return {
            k: ("***" if str(k).lower() == "password" and v else _mask_passwords(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_passwords(v) for v in value]
    if isinstance(value, SecretStr):
        return "***"
    return value


_settings: Settings | None = None


@lru_cache(maxsize=1)
def _cached() -> Settings:
    return Settings()


def get_settings() -> Settings:
    if _settings is not None:
        return _settings
    return _cached()


def _weak_secret(name: str, value: str, minimum: int) -> str | None:
    """Why ``value`` is not a real secret (one line naming ``name``), or None: the one rule
    for every key and token, ``minimum`` bytes after stripping surrounding whitespace."""
    stripped = value.strip()
    if not stripped or any(p in value.lower() for p in PRINTED_SECRETS):
        return (
            f"未设置 {name}，或使用了内置开发密钥（非嵌入模式拒绝） / {name} is not set or "
            "is the built-in development key (refused outside the embedded mode)"
        )
    if value != stripped:
        return f"{name} 首尾有空白字符 / {name} begins or ends with whitespace"
    if len(stripped.encode()) < minimum:
        return f"{name} 少于 {minimum} 字节 / {name} is shorter than {minimum} bytes"
    top = max(stripped.count(c) for c in set(stripped))
    if len(set(stripped)) < 8 or top * 2 > len(stripped):
        return (
            f"{name} 过于简单（不同字符少于 8 个，或大半是同一字符）/ {name} is too simple "
            "(fewer than 8 different characters, or mostly one repeated character)"
        )
    return None


def require_secret_key(process: str, settings: Settings | None = None) -> None:
    """Refuse to start ``process`` outside the embedded mode without a real secret key.

    Raises :class:`~newsletter.core.errors.ConfigError` with one line naming the
    process, what is wrong and what to do.
    """
    from newsletter.core.errors import ConfigError

    cfg = settings or get_settings()
    problem = cfg.secret_key_problem()
    if problem is not None:
        raise ConfigError(
            f"{process}: 拒绝启动 / refusing to start: {problem}; "
            "生成密钥 / generate one with `openssl rand -hex 32`"
        )


#: Bumped by every :func:`reset_settings`: caches derived from the settings compare it.
generation = 0


def reset_settings(settings: Settings | None = None) -> None:
    """Replace the process-wide settings (tests, the demo)."""
    global _settings, generation
    _settings = settings
    generation += 1
    _cached.cache_clear()
