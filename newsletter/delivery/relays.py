"""Relays in service: taken out on failure, probed, brought back; and the pool that
spreads one batch's messages over them.

Failover: a connection failure takes a relay out at once, a burst of 4xx
replies (``relay_failure_burst`` within ``relay_failure_window`` seconds) too.
The state lives in the ``relay_state`` table, so every worker on every machine
sees it (and the embedded mode needs no Redis). A relay that is out is probed
(:mod:`.relay_probe`) with doubling waits; when it answers it is brought back. A
delivery that failed on a relay just taken out is due again at once, on another relay.
A send pauses itself only when no relay that may carry it is in service (then
:mod:`.heal` probes and resumes it).

Spreading: among the relays that may carry a message (:func:`.relay_config.route`),
the ones in service share the traffic by weight (smooth weighted round robin, so the
split is exact within a process and proportional across workers).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.core import clock
from newsletter.core.caches import on_reset, process_cache
from newsletter.core.config import Settings, get_settings
from newsletter.core.db import session_scope
from newsletter.delivery.relay_config import RelayConfig, load_relays, route
from newsletter.delivery.relay_probe import probe
from newsletter.delivery.smtp import MaildirConnection, Outcome, SmtpConnection, settings_connection
from newsletter.models import Delivery, RelayState

__all__ = [
    "connect",
    "RelayPool",
    "down_relays",
    "probe_due",
    "relay_counts",
    "report",
    "status",
    "take_out",
]

log = logging.getLogger(__name__)

MAX_GAP = 300.0

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
                    tls_verify=relay.tls_verify,
                    tls_ca_file=relay.tls_ca_file,
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
