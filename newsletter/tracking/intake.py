"""Taking events in: the public endpoints verify a token and :func:`submit` the event.

With Redis configured, ``submit`` appends it to a stream (``XADD``) and the ingester consumes
the stream in batches. Without Redis (embedded mode), or when Redis is unreachable, the
event is ingested directly; if the database is unreachable too, it is appended to a local
spool file that the ingester replays (:func:`replay_spool`), so the endpoint always answers
and no event is lost. Each event gets its ``uid`` here, where it is first seen."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii as _json_str
from pathlib import Path
from typing import Any

from newsletter.core import clock
from newsletter.core.config import get_settings
from newsletter.core.safety.signing import delivery_of
from newsletter.tracking.classify import network_tag
from newsletter.tracking.rollups import ingest

log = logging.getLogger(__name__)

__all__ = [
    "GROUP",
    "STREAM",
    "make_event",
    "open_payload",
    "replay_spool",
    "spool",
    "spool_dir",
    "store_directly",
    "submit",
]


STREAM = "events"


#: The consumer group of the ingesters on :data:`STREAM`.
GROUP = "ingest"


def make_event(
    kind: str, token: str, *, link: int | None = None, user_agent: str = "", ip: str = ""
) -> dict[str, Any] | None:
    """Build an event from a request, or None if the token is forged (nothing is recorded).

    The IP is classified (network tag) and hashed here: the address itself never
    leaves the web process.  ``at`` is the time in microseconds since the epoch
    (UTC); the ingester stores it as the same timestamp an ISO string would give.
    """
    did = delivery_of(token)
    if did is None:
        return None
    return {
        "uid": os.urandom(16).hex(),
        "kind": kind,
        "delivery_id": did,
        "link": link,
        "at": clock.micros(),
        "ua": (user_agent or "")[:300],
        "ip": _ip_hash(ip) if ip else "",
        "net": network_tag(ip) if ip else "",
    }


def open_payload(token: str, user_agent: str, ip: str) -> bytes | None:
    """An open event, JSON-encoded for the stream, or None if the token is forged.

    What ``json.dumps(make_event("open", …))`` gives (same keys, values and
    order; a test holds them together), built without the intermediate dict:
    this runs for every open pixel the pixel server answers.
    """
    did = delivery_of(token)
    if did is None:
        return None
    return _OPEN_JSON % (
        os.urandom(16).hex().encode(),
        did,
        clock.micros(),
        _json_str(user_agent[:300]).encode(),
        (_ip_hash(ip) if ip else "").encode(),
        (network_tag(ip) if ip else "").encode(),
    )


_OPEN_JSON = (
    b'{"uid": "%s", "kind": "open", "delivery_id": %d, "link": null, "at": %d, "ua": %s, '
    b'"ip": "%s", "net": "%s"}'
)


_salt_of: tuple[object, Any] = (None, None)


def _ip_hash(ip: str) -> str:
    # Only a salted hash of the /24 (IPv4) or /48 (IPv6) is ever kept.
    global _salt_of
    if ":" in ip:
        prefix = ":".join(ip.split(":")[:3])
    else:
        prefix = ".".join(ip.split(".")[:3])
    cfg = get_settings()
    if _salt_of[0] is not cfg:  # the salted state, once per settings object
        _salt_of = (cfg, hashlib.sha256(cfg.secret_key.get_secret_value().encode()))
    h = _salt_of[1].copy()
    h.update(prefix.encode())
    return str(h.hexdigest()[:16])


_redis_down_until = 0.0


_BREAKER_SECONDS = 5.0


def submit(event: dict[str, Any]) -> str:
    """Hand the event on. Returns the path taken: "stream", "direct" or "spool".

    Redis first (no database access); if Redis failed in the last few seconds
    it is not retried for every request (a circuit breaker keeps the endpoint
    fast during an outage).  Then a direct insert; then the local spool.
    """
    global _redis_down_until
    cfg = get_settings()
    if cfg.redis_url and time.monotonic() >= _redis_down_until:
        try:
            from newsletter.core.redis import redis_client

            redis_client().xadd(cfg.redis_prefix + STREAM, {"e": json.dumps(event)})
            return "stream"
        except Exception as exc:  # Redis down: never lose the event
            _redis_down_until = time.monotonic() + _BREAKER_SECONDS
            log.warning("redis unavailable (%s); ingesting directly", exc)
    return store_directly([event])


def store_directly(events: list[dict[str, Any]]) -> str:
    """Store events without Redis: a direct insert, else the local spool ("direct"/"spool")."""
    try:
        ingest(events)
        return "direct"
    except Exception as exc:
        log.error("database unavailable (%s); spooling %d events", exc, len(events))
        spool(events)
        return "spool"


def spool_dir() -> Path:
    return get_settings().var_dir / "spool"


def spool(events: Iterable[dict[str, Any]]) -> None:
    """Append events to this process's spool file (one JSON line each, fsynced)."""
    d = spool_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"events-{os.getpid()}.jsonl"
    payload = "".join(json.dumps(e) + "\n" for e in events).encode()
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the replayer took the file between open and lock: reopen
                continue
            os.write(fd, payload)
            os.fsync(fd)
            return
        finally:
            os.close(fd)


def replay_spool(*, db_url: str | None = None, chunk: int = 500) -> int:
    """Ingest every spooled event (idempotent: uids), then delete the files. Returns events read."""
    d = spool_dir()
    if not d.is_dir():
        return 0
    n = 0
    for f in sorted(d.glob("events-*.jsonl")):
        taken = f.with_name(f"{f.name}.replay-{os.getpid()}")
        try:
            f.rename(taken)
        except FileNotFoundError:
            continue
        n += _replay_file(taken, db_url, chunk)
    for f in sorted(d.glob(f"*.replay-{os.getpid()}")):  # left over by an earlier failure
        n += _replay_file(f, db_url, chunk)
    return n


def _replay_file(path: Path, db_url: str | None, chunk: int) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # wait for a writer that opened it before the rename
        raw = b""
        while block := os.read(fd, 1 << 20):
            raw += block
    finally:
        os.close(fd)
    events = []
    for line in raw.decode("utf-8", "replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            log.warning("dropping a torn spool line in %s", path.name)
    for i in range(0, len(events), chunk):
        ingest(events[i : i + chunk], db_url=db_url)
    path.unlink()
    return len(events)
