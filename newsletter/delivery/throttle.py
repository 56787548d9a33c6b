"""Shared token buckets: per sender identity, per destination domain and per relay.

With Redis configured the buckets live there (one Lua script, atomic), so every
worker on every machine draws from the same bucket; without Redis they live
in the process (embedded mode has one sender anyway).

:meth:`Throttle.acquire` never blocks for long: it returns how many seconds
the caller must wait.  The engine sleeps for short waits and, for anything
longer than ``max_sleep``, defers the delivery with a ``next_attempt_at`` and
moves on, so a send can never sleep forever (a failure mode listmonk's
sliding window is known for).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from newsletter.core import clock
from newsletter.core.config import get_settings

__all__ = ["Throttle", "throttle"]

_LUA = """
local tokens_key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', tokens_key, 't', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', tokens_key, 't', tokens, 'ts', now)
redis.call('EXPIRE', tokens_key, 3600)
return tostring(wait)
"""


@dataclass
class _Local:
    tokens: float
    ts: float


@dataclass
class Throttle:
    """Buckets: ``sender`` → rate/s, plus per-domain rates (e.g. {"qq.com": 20})."""

    sender_rate: float = 0.0
    domain_rates: dict[str, float] = field(default_factory=dict)
    burst_seconds: float = 1.0
    _local: dict[str, _Local] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _buckets(self, sender: str, domain: str) -> list[tuple[str, float]]:
        out = []
        if self.sender_rate > 0:
            out.append((f"sender:{sender}", self.sender_rate))
        rate = self.domain_rates.get(domain)
        if rate:
            out.append((f"domain:{domain}", rate))
        return out

    def acquire(self, sender: str, rcpt: str) -> float:
        """Take one token from each bucket that applies. Returns seconds to wait (0 = go)."""
        domain = rcpt.rpartition("@")[2].lower()
        wait = 0.0
        for key, rate in self._buckets(sender, domain):
            wait = max(wait, self._take(key, rate))
        return wait

    def acquire_relay(self, relay: str, rate: float) -> float:
        """Take one token from a relay's own bucket (``rate`` msg/s; 0 = unlimited)."""
        return self._take(f"relay:{relay}", rate) if rate > 0 else 0.0

    def _take(self, key: str, rate: float) -> float:
        burst = max(1.0, rate * self.burst_seconds)
        cfg = get_settings()
        now = clock.timestamp()
        if cfg.redis_url:
            try:
                from newsletter.core.redis import redis_client

                r = redis_client()
                return float(r.eval(_LUA, 1, f"{cfg.redis_prefix}bucket:{key}", rate, burst, now))
            except Exception:
                pass  # Redis down: fall back to a local bucket rather than stop sending
        with self._lock:
            b = self._local.get(key)
            if b is None:
                b = self._local[key] = _Local(burst, now)
            b.tokens = min(burst, b.tokens + (now - b.ts) * rate)
            b.ts = now
            if b.tokens >= 1:
                b.tokens -= 1
                return 0.0
            return (1 - b.tokens) / rate


_throttle: Throttle | None = None


def throttle() -> Throttle:
    global _throttle
    cfg = get_settings()
    if _throttle is None or (_throttle.sender_rate, _throttle.domain_rates) != (
        cfg.rate_per_second,
        cfg.domain_rates,
    ):
        _throttle = Throttle(cfg.rate_per_second, dict(cfg.domain_rates))
    return _throttle
