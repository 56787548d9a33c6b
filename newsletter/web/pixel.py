"""The open pixel's fast path: a plain ASGI middleware in front of the FastAPI app.

``GET /o/{token}.gif`` is by far the most frequent request the product serves
(every message opened, and every image prefetch by Apple's and Gmail's
proxies).  It is answered here, before routing, validation and dependency
injection: verify the token (HMAC), hand the event to the Redis stream with an
asyncio client (``XADD``, no database access), answer the 43-byte GIF.  If
Redis fails, the synchronous fallback of :func:`~newsletter.tracking.events.submit`
(direct insert, then the local spool) runs in a thread, so no open is lost.
The FastAPI route with the same path stays as the documented, tested reference.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ..config import get_settings
from ..tracking.events import STREAM, make_event, submit

__all__ = ["PixelFastPath"]

log = logging.getLogger(__name__)

_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", b"43"),
    (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0"),
    (b"pragma", b"no-cache"),
    (b"expires", b"0"),
]


class PixelFastPath:
    """Group commit: requests arriving in the same event-loop turn share one pipelined
    ``XADD`` round trip, and each answers only after its event is in Redis."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._redis: Any = None
        self._url = ""
        self._down_until = 0.0
        self._batch: list[dict[str, Any]] = []
        self._done: asyncio.Future[bool] | None = None

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the other requests of this turn join the batch
        batch, done = self._batch, self._done
        self._batch, self._done = [], None
        assert done is not None
        cfg = get_settings()
        try:
            pipe = self._client().pipeline(transaction=False)
            for event in batch:
                pipe.xadd(cfg.redis_prefix + STREAM, {"e": json.dumps(event)})
            await pipe.execute()
            done.set_result(True)
        except Exception as exc:
            self._down_until = time.monotonic() + 5.0
            self._redis = None
            log.warning("redis unavailable (%s); falling back for %d events", exc, len(batch))
            done.set_result(False)
            for event in batch:
                await asyncio.to_thread(submit, event)

    async def _stream(self, event: dict[str, Any]) -> None:
        self._batch.append(event)
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().create_task(self._flush())
        done = self._done
        await asyncio.shield(done)

    def _client(self) -> Any:
        url = get_settings().redis_url
        if self._redis is None or url != self._url:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            self._url = url
        return self._redis

    async def _submit(self, event: dict[str, Any]) -> None:
        cfg = get_settings()
        if cfg.redis_url and time.monotonic() >= self._down_until:
            await self._stream(event)
            return
        await asyncio.to_thread(submit, event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope.get("method") != "GET"
            or not path.startswith("/o/")
            or not path.endswith(".gif")
        ):
            await self.app(scope, receive, send)
            return
        from .public import PIXEL

        ua = ""
        for k, v in scope.get("headers", ()):
            if k == b"user-agent":
                ua = v.decode("latin-1")
                break
        client = scope.get("client")
        event = make_event("open", path[3:-4], user_agent=ua, ip=client[0] if client else "")
        if event is not None:
            await self._submit(event)
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": PIXEL})
