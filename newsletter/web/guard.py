"""ASGI guard around the whole web app: security headers and request-body limits.

* Every response gets a Content-Security-Policy, ``X-Frame-Options``,
  ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy`` unless the route
  set its own (the console's pages and its sandboxed preview frames do).
  The default policy allows no inline script, no plugin, no foreign frame
  parent and no form target outside this origin, on public pages too (the
  archive, the subscribe, unsubscribe and preference pages).
* Every request body is limited, by ``Content-Length`` up front and by
  counting bytes while it streams in (chunked bodies): an issue upload 30 MB,
  a subscriber import 200 MB, anything else 1 MB.  Over the limit: 413 with
  a one-line message, before the application reads the body.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["DEFAULT_HEADERS", "Guard", "body_limit"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'; "
    "form-action 'self'"
)
#: Swagger UI (embedded mode only; off in production) loads its assets from jsDelivr.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
DEFAULT_HEADERS: dict[bytes, bytes] = {
    b"content-security-policy": CSP.encode(),
    b"x-frame-options": b"SAMEORIGIN",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
}

MB = 1024 * 1024
_LIMITS: list[tuple[str, int]] = [
    ("/api/imports", 200 * MB),
    ("/console/subscribers/import", 200 * MB),
    ("/api/issues", 30 * MB),
    ("/console/issues", 30 * MB),
]
DEFAULT_LIMIT = 1 * MB


def body_limit(method: str, path: str) -> int:
    """Largest request body accepted for ``method path``, in bytes."""
    if method in ("POST", "PUT", "PATCH"):
        for prefix, limit in _LIMITS:
            if path == prefix or (path.startswith(prefix + "/") and prefix.endswith("import")):
                return limit
    return DEFAULT_LIMIT


class Guard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        """Everything else (``routes``, ``openapi()``, ``state``…) is the wrapped app's."""
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = body_limit(scope.get("method", "GET"), path)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _plain(send, 400, "bad Content-Length / 请求头无效")
                    return
                if declared > limit:
                    await _too_large(send, limit)
                    return
        received = 0
        started = False
        over = False

        async def limited_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True  # the app sees the client go away; the client gets a 413
                    return {"type": "http.disconnect"}
            return message

        docs = path in ("/docs", "/docs/oauth2-redirect")

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # whatever the app answers to a cut-off body, the answer is 413
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _v in headers}
                for k, v in DEFAULT_HEADERS.items():
                    if k not in have:
                        value = DOCS_CSP.encode() if docs and k == b"content-security-policy" else v
                        headers.append((k, value))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    await _plain(
        send,
        413,
        f"request body larger than {limit // MB or 1} MB / 请求内容超过 {limit // MB or 1} MB",
    )


async def _plain(send: Send, status: int, text: str) -> None:
    body = json.dumps({"detail": text}, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += list(DEFAULT_HEADERS.items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
