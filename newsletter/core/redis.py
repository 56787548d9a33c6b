"""The shared Redis client (rate limits, the event stream, the WeChat token)."""

from __future__ import annotations

from functools import lru_cache

import redis

from newsletter.core.config import get_settings

__all__ = ["redis_client"]


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def redis_client() -> redis.Redis:
    url = get_settings().redis_url
    if not url:
        raise RuntimeError("no Redis configured (NEWSLETTER_REDIS_URL)")
    return _client(url)
