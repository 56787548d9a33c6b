"""The open pixel's fast path: a plain ASGI middleware in front of the FastAPI app.

``GET /o/{token}.gif`` is by far the most frequent request the product serves
(every message opened, and every image prefetch by Apple's and Gmail's
proxies).  It is answered here, before routing, validation and dependency
injection: build the event (:func:`~newsletter.tracking.intake.open_payload`:
HMAC verified, IP classified and hashed), hand it to the group-committing
:class:`~newsletter.tracking.streamwriter.EventWriter` (pipelined ``XADD``, no
database access; Redis failing, a direct insert, then the local spool, so no
open is lost), answer the 43-byte GIF once the event is safe.

The dedicated pixel server (:mod:`.pixelserver`, ``newsletter tracking
serve-pixel``) does the same without ASGI and is several times faster; this
path serves deployments that route ``/o/`` to the web app.  The FastAPI route
with the same path stays as the documented, tested reference (and answers
``HEAD``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from newsletter.core.config import get_settings
from newsletter.tracking.intake import STREAM, open_payload
from newsletter.tracking.streamwriter import EventWriter

__all__ = ["PixelFastPath"]

_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", b"43"),
    (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0"),
    (b"pragma", b"no-cache"),
    (b"expires", b"0"),
]


class PixelFastPath:
    """Requests arriving in the same event-loop turn share one pipelined ``XADD`` write,
    and each answers only after its event is in Redis (or stored directly)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._writer: EventWriter | None = None
        self._settings: object = None
        self._closing: asyncio.Task[None] | None = None

    def _writer_for_loop(self) -> EventWriter:
        loop = asyncio.get_running_loop()
        cfg = get_settings()
        w = self._writer
        if w is None or w.loop is not loop or self._settings is not cfg:
            if w is not None and w.loop is loop:
                self._closing = loop.create_task(w.close())  # the settings changed
            w = self._writer = EventWriter(cfg.redis_url, cfg.redis_prefix + STREAM, loop=loop)
            self._settings = cfg
        return w

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
        from newsletter.web.public import PIXEL

        ua = ""
        for k, v in scope.get("headers", ()):
            if k == b"user-agent":
                ua = v.decode("latin-1")
                break
        client = scope.get("client")
        payload = open_payload(path[3:-4], ua, client[0] if client else "")
        if payload is not None:
            await self._writer_for_loop().record(payload)
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": PIXEL})
