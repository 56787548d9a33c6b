"""Several named relays: configuration, routing, weighted spreading and failover.

Configuration (``NEWSLETTER_RELAYS``, see :class:`RelayConfig`) names each relay
with its host, port, TLS mode, credentials, rate limit and weight, and
optionally the From domains or publications it is reserved for. Without it the
single ``smtp_*`` relay of the settings is the one relay, named ``default``.

Routing: the relays reserved for a message's From domain or publication carry
it; when none is, the unreserved ("general") relays do. Among those, the ones
in service share the traffic by weight (smooth weighted round robin, so the
split is exact within a process and proportional across workers).

Failover: a connection failure takes a relay out at once, a burst of 4xx
replies (``relay_failure_burst`` within ``relay_failure_window`` seconds) too.
The state lives in the ``relay_state`` table, so every worker on every machine
sees it (and the embedded mode needs no Redis). A relay that is out is probed
(connect, EHLO, login, NOOP, QUIT) with doubling waits; when it answers it is
brought back. A delivery that failed on a relay just taken out is due again at
once, on another relay. A send pauses itself only when no relay that may carry
it is in service (then :mod:`.heal` probes and resumes it).

Passwords are kept in :class:`~pydantic.SecretStr` and never appear in logs,
reports, errors or the console.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import smtplib
import threading
import time
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.core import clock
from newsletter.core.caches import on_reset, process_cache
from newsletter.core.config import Settings, get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import ConfigError
from newsletter.delivery.smtp import MaildirConnection, Outcome, SmtpConnection, settings_connection
from newsletter.models import Delivery, RelayState

__all__ = [
    "connect",
    "RelayConfig",
    "RelayConfigError",
    "RelayPool",
    "down_relays",
    "load_relays",
    "parse_relays",
    "probe",
    "probe_due",
    "probe_rcpt",
    "public_relays",
    "relay_counts",
    "report",
    "route",
    "take_out",
]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")
_DOMAIN = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)+$"
)
MAX_GAP = 300.0


class RelayConfigError(ConfigError):
    """The relay configuration cannot be used; the message is one line (en / 中文)."""


class RelayConfig(BaseModel):
    """One relay. ``tls``: none, starttls or ssl (implicit TLS, usually port 465)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    host: str
    port: int = Field(25, ge=1, le=65535)
    tls: Literal["none", "starttls", "ssl"] = "none"
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


# -- health: taken out, probed, brought back -----------------------------------

_down_cache: tuple[float, dict[str, dt.datetime | None], int] | None = None
_cache_lock = threading.Lock()
CACHE_SECONDS = 1.0


@on_reset
def _forget_down() -> None:
    global _down_cache
    _down_cache = None


def down_relays(*, fresh: bool = False) -> dict[str, dt.datetime | None]:
    """name -> next probe time, for the relays out of service (cached for a second)."""
    global _down_cache
    from newsletter.core import config as config

    with _cache_lock:
        if (
            not fresh
            and _down_cache
            and _down_cache[2] == config.generation
            and time.monotonic() - _down_cache[0] < CACHE_SECONDS
        ):
            return _down_cache[1]
    with session_scope() as s:
        rows = s.execute(
            select(RelayState.name, RelayState.next_probe_at).where(
                RelayState.down_since.is_not(None)
            )
        ).all()
    down = {str(n): p for n, p in rows}
    with _cache_lock:
        _down_cache = (time.monotonic(), down, config.generation)
    return down


def _forget_cache() -> None:
    global _down_cache
    with _cache_lock:
        _down_cache = None


def _gap(attempts: int, flaps: int) -> float:
    base = max(get_settings().relay_probe_seconds, 0.05)
    return min(base * 2 ** max(attempts + flaps - 1, 0), MAX_GAP)


def _ensure_row(s: Session, name: str) -> None:
    ins = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    s.execute(ins(RelayState).values(name=name).on_conflict_do_nothing(index_elements=["name"]))


def take_out(name: str, reason: str, now: dt.datetime | None = None) -> bool:
    """Take ``name`` out of service. True if this call did it (not already out)."""
    from newsletter.delivery.alerts import notify

    now = now or clock.now()
    reason = reason[:500]
    with session_scope() as s:
        _ensure_row(s, name)
        row = s.get(RelayState, name)
        assert row is not None
        if row.down_since is not None:
            return False
        recent = row.last_up_at is not None and (now - row.last_up_at).total_seconds() < MAX_GAP
        flaps = row.flaps + 1 if recent else 1
        won = s.execute(
            update(RelayState)
            .where(RelayState.name == name, RelayState.down_since.is_(None))
            .values(
                down_since=now,
                next_probe_at=now + dt.timedelta(seconds=_gap(1, flaps)),
                probe_attempts=0,
                flaps=flaps,
                last_error=reason,
            )
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]
            return False
        notify(
            s,
            "relay_down",
            f"relay {name} taken out of service",
            f"{reason}; other relays carry its mail while it is probed "
            f"/ 发信服务器 {name} 已暂停使用，其他服务器接替，恢复后自动启用",
            key=f"relay_down:{name}:{now.isoformat()}",  # one per outage
            once=True,
        )
    _forget_cache()
    log.warning("relay %s taken out of service: %s", name, reason)
    return True


def report(
    relay: RelayConfig,
    outcome: Outcome,
    now: dt.datetime | None = None,
    *,
    alternatives: bool = True,
) -> bool:
    """Account one deferral to ``relay``; True when the relay is now out of service.

    A relay that cannot be connected to, or that did not answer within its deadline
    (connect, greeting, a command, the final dot), is taken out at once. Dropped connections
    and 4xx replies count towards the burst; they take a relay out only when
    another relay could carry its mail (``alternatives``): with one relay the
    send's own auto-pause decides, as before.
    """
    cfg = get_settings()
    if relay.host == "maildir":
        return False
    now = now or clock.now()
    if outcome.timed_out:
        # A relay that does not answer in time holds a worker for the whole deadline on
        # every try: out at once (even the only one: the send then pauses and probes).
        take_out(relay.name, outcome.reply, now)
        return True
    if outcome.code is None and outcome.reply.startswith("connection failed"):
        take_out(relay.name, outcome.reply, now)
        return True
    lost = outcome.code is None and outcome.reply.startswith("connection")
    if alternatives and (lost or (outcome.code is not None and 400 <= outcome.code < 500)):
        from newsletter.core.ratelimit import hit

        with session_scope() as s:
            within = hit(
                s,
                f"relay4xx:{relay.name}",
                window_seconds=max(cfg.relay_failure_window, 1),
                limit=max(cfg.relay_failure_burst, 1),
                now=now,
            )
        if not within:
            take_out(
                relay.name,
                f"more than {cfg.relay_failure_burst} 4xx replies or dropped connections "
                f"in {cfg.relay_failure_window} s (last: {outcome.code} {outcome.reply[:120]})",
                now,
            )
            return True
    return False


def probe(relay: RelayConfig) -> tuple[bool, str]:
    """(answers, detail): connect, EHLO, STARTTLS/login as configured, NOOP, QUIT."""
    if relay.host == "maildir":
        return True, "maildir"
    try:
        cls = smtplib.SMTP_SSL if relay.tls == "ssl" else smtplib.SMTP
        connect_t, command_t, _dot = relay.deadlines()
        # A hung relay must not hold its prober long: at most 10 s for each wait.
        smtp = cls(timeout=min(connect_t, 10))
        smtp.connect(relay.host, relay.port)  # (the greeting is read with the same limit)
        if smtp.sock is not None:
            smtp.sock.settimeout(min(command_t, 10))
        try:
            code, _ = smtp.ehlo()
            if relay.tls == "starttls":
                smtp.starttls()
                code, _ = smtp.ehlo()
            if relay.username:
                smtp.login(relay.username, relay.password.get_secret_value())
            noop, _ = smtp.noop()
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    except (smtplib.SMTPException, OSError) as exc:
        return False, type(exc).__name__ + (
            f" {exc.smtp_code}" if isinstance(exc, smtplib.SMTPResponseException) else ""
        )
    return code == 250 and noop == 250, f"EHLO {code}, NOOP {noop}"


def probe_rcpt(relay: RelayConfig, sender: str, rcpt: str) -> tuple[bool, str]:
    """(accepts, detail): a test transaction up to RCPT (connect, EHLO, STARTTLS/login as
    configured, MAIL, RCPT, then RSET and QUIT: nothing is sent). Accepts on a 2xx RCPT."""
    if relay.host == "maildir":
        return True, "maildir"
    try:
        cls = smtplib.SMTP_SSL if relay.tls == "ssl" else smtplib.SMTP
        connect_t, command_t, _dot = relay.deadlines()
        smtp = cls(timeout=min(connect_t, 10))
        smtp.connect(relay.host, relay.port)
        if smtp.sock is not None:
            smtp.sock.settimeout(min(command_t, 10))
        try:
            smtp.ehlo()
            if relay.tls == "starttls":
                smtp.starttls()
                smtp.ehlo()
            if relay.username:
                smtp.login(relay.username, relay.password.get_secret_value())
            mail, _ = smtp.mail(sender)
            code, reply = smtp.rcpt(rcpt) if mail // 100 == 2 else (mail, b"(MAIL refused)")
            smtp.rset()
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    except (smtplib.SMTPException, OSError) as exc:
        return False, type(exc).__name__ + (
            f" {exc.smtp_code}" if isinstance(exc, smtplib.SMTPResponseException) else ""
        )
    text = reply.decode("utf-8", "replace").splitlines()[0][:120] if reply else ""
    return code // 100 == 2, f"RCPT {code} {text}".strip()


def probe_due(
    now: dt.datetime | None = None, *, names: set[str] | None = None, force: bool = False
) -> list[str]:
    """Probe the relays out of service whose probe is due; returns those brought back.

    Two callers at once are safe: a probe is claimed by a conditional update first.
    """
    from newsletter.delivery.alerts import notify

    now = now or clock.now()
    by_name = {r.name: r for r in load_relays()}
    with session_scope() as s:
        q = select(RelayState.name, RelayState.probe_attempts, RelayState.flaps).where(
            RelayState.down_since.is_not(None)
        )
        if not force:
            q = q.where(RelayState.next_probe_at <= now)
        rows = [r for r in s.execute(q).all() if names is None or r[0] in names]
    back: list[str] = []
    for name, attempts, flaps in rows:
        relay = by_name.get(name)
        with session_scope() as s:
            won = s.execute(
                update(RelayState)
                .where(
                    RelayState.name == name,
                    RelayState.probe_attempts == attempts,
                    RelayState.down_since.is_not(None),
                )
                .values(
                    probe_attempts=attempts + 1,
                    next_probe_at=now + dt.timedelta(seconds=_gap(attempts + 2, flaps)),
                )
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]
                continue
        if relay is None:  # removed from the configuration: forget it
            ok, detail = True, "no longer configured"
        else:
            ok, detail = probe(relay)
        with session_scope() as s:
            if not ok:
                s.execute(
                    update(RelayState)
                    .where(RelayState.name == name)
                    .values(last_error=f"probe: {detail}"[:500])
                )
                continue
            s.execute(
                update(RelayState)
                .where(RelayState.name == name)
                .values(
                    down_since=None,
                    next_probe_at=None,
                    probe_attempts=0,
                    last_up_at=now,
                    last_error=None,
                )
            )
            notify(
                s,
                "relay_up",
                f"relay {name} back in service",
                f"the relay answers again ({detail}) / 发信服务器 {name} 已恢复使用",
                key=f"relay_up:{name}:{now.isoformat()}",
                once=True,
            )
        log.info("relay %s back in service (%s)", name, detail)
        back.append(name)
    if back:
        _forget_cache()
    return back


def status() -> list[dict[str, Any]]:
    """Each configured relay with its state (for the CLI and the console); no secrets."""
    with session_scope() as s:
        rows = {r.name: r for r in s.scalars(select(RelayState))}
        out = []
        for r in load_relays():
            st = rows.get(r.name)
            since = st.down_since if st is not None else None
            probe_at = st.next_probe_at if st is not None and since is not None else None
            out.append(
                {
                    **r.public(),
                    "state": "down" if since is not None else "up",
                    "down_since": since.isoformat() if since else None,
                    "next_probe_at": probe_at.isoformat() if probe_at else None,
                    "last_error": st.last_error if st else None,
                }
            )
    return out


def relay_counts(s: Session, send_id: int) -> dict[str, int]:
    """Per relay, how many of the send's deliveries it carried (sent)."""
    rows = s.execute(
        select(Delivery.relay, func.count())
        .where(Delivery.send_id == send_id, Delivery.state == "sent")
        .group_by(Delivery.relay)
        .order_by(Delivery.relay)
    ).all()
    return {str(name or "(unrecorded)"): int(n) for name, n in rows}


# -- the relays of one batch -----------------------------------------------------

_swrr: dict[str, float] = process_cache({})
_swrr_lock = threading.Lock()


class RelayPool:
    """The relays of one batch: picks one per message and keeps one connection each."""

    def __init__(self, cfg: Settings | None = None) -> None:
        self.cfg = cfg or get_settings()
        self.relays = load_relays(self.cfg)
        self.conns: dict[str, SmtpConnection | MaildirConnection] = {}
        self.out: set[str] = set()

    def eligible(self, from_domain: str, publication: str | None) -> list[RelayConfig]:
        return route(self.relays, from_domain, publication)

    def usable(self, from_domain: str, publication: str | None) -> list[RelayConfig]:
        down = down_relays()
        return [
            r
            for r in self.eligible(from_domain, publication)
            if r.name not in down and r.name not in self.out
        ]

    def pick(
        self, from_domain: str, publication: str | None, *, avoid: str | None = None
    ) -> RelayConfig | None:
        """The next relay by smooth weighted round robin among those in service.

        ``avoid``: the relay of a failed earlier attempt, passed over when another can go.
        """
        cands = self.usable(from_domain, publication)
        if not cands:
            return None
        if avoid is not None and len(cands) > 1:
            cands = [r for r in cands if r.name != avoid] or cands
        if len(cands) == 1:
            return cands[0]
        total = sum(r.weight for r in cands)
        with _swrr_lock:
            for r in cands:
                _swrr[r.name] = _swrr.get(r.name, 0.0) + r.weight
            best = max(cands, key=lambda r: (_swrr[r.name], -self.relays.index(r)))
            _swrr[best.name] -= total
        return best

    def connection(self, relay: RelayConfig) -> SmtpConnection | MaildirConnection:
        conn = self.conns.get(relay.name)
        if conn is None:
            if relay.host == "maildir":
                conn = MaildirConnection(self.cfg.outbox_dir)
            else:
                connect_t, command_t, dot_t = relay.deadlines(self.cfg)
                conn = SmtpConnection(
                    relay.host,
                    relay.port,
                    timeout=command_t,
                    connect_timeout=connect_t,
                    data_timeout=dot_t,
                    username=relay.username,
                    password=relay.password.get_secret_value(),
                    starttls=relay.tls == "starttls",
                    ssl=relay.tls == "ssl",
                )
            self.conns[relay.name] = conn
        return conn

    def report(self, relay: RelayConfig, outcome: Outcome, *, alternatives: bool = True) -> bool:
        """Account a deferral; True when the relay is out (its connection is closed)."""
        if report(relay, outcome, alternatives=alternatives):
            self.out.add(relay.name)
            conn = self.conns.pop(relay.name, None)
            if conn is not None:
                conn.close(force=True)
            return True
        return False

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()
        self.conns.clear()


def connect() -> SmtpConnection | MaildirConnection:
    """A connection for system mail (confirmations, test sends, alerts): the single
    ``smtp_*`` relay, or with ``relays`` configured the first general relay in service."""
    from newsletter.core.config import get_settings

    s = get_settings()
    if s.relays:
        pool = RelayPool(s)
        down = down_relays()
        general = [r for r in pool.relays if r.general]
        relay = next((r for r in general if r.name not in down), general[0])
        return pool.connection(relay)
    return settings_connection(s)


def _install_system_connect() -> None:
    from newsletter.delivery import alerts as notify

    notify.system_connect = connect


_install_system_connect()
