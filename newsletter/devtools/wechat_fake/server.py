"""The fake as an HTTP server: one FastAPI app routing WeChat's paths to the endpoints,
with the switches applied (delay, busy, blocked IP, quotas), run in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from newsletter.devtools.wechat_fake.endpoints import Endpoints
from newsletter.devtools.wechat_fake.state import (
    SPANS,
    Recorded,
    _err,
    decode_body,
)


class FakeWeChat(Endpoints):
    """The whole fake: state, endpoints and its HTTP app (see the package docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = self._build()

    # -- the HTTP app ----------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        app = FastAPI(title="fake WeChat API", docs_url=None, redoc_url=None)
        Handler = Callable[[dict[str, str], Any], dict[str, Any]]
        routes: list[tuple[str, str, Handler, bool, bool]] = [
            ("GET", "/cgi-bin/token", self.token, False, False),
            ("POST", "/cgi-bin/stable_token", self.stable_token, False, False),
            ("POST", "/cgi-bin/openapi/quota/get", self.quota_get, True, False),
            ("POST", "/cgi-bin/media/uploadimg", self.uploadimg, True, True),
            ("POST", "/cgi-bin/material/add_material", self.add_material, True, True),
            ("POST", "/cgi-bin/draft/add", self.draft_add, True, False),
            ("POST", "/cgi-bin/draft/update", self.draft_update, True, False),
            ("POST", "/cgi-bin/draft/delete", self.draft_delete, True, False),
            ("POST", "/cgi-bin/draft/batchget", self.draft_batchget, True, False),
            ("POST", "/cgi-bin/draft/get", self.draft_get, True, False),
            ("GET", "/cgi-bin/draft/count", self.draft_count, True, False),
            ("POST", "/cgi-bin/freepublish/batchget", self.freepublish_batchget, True, False),
            ("POST", "/cgi-bin/freepublish/getarticle", self.freepublish_getarticle, True, False),
            ("POST", "/cgi-bin/freepublish/submit", self.freepublish_submit, True, False),
            ("POST", "/cgi-bin/freepublish/get", self.freepublish_get, True, False),
            ("POST", "/cgi-bin/message/mass/sendall", self.sendall, True, False),
            ("POST", "/cgi-bin/message/mass/preview", self.preview, True, False),
            ("POST", "/cgi-bin/message/mass/get", self.mass_get, True, False),
        ]
        for name in SPANS:
            routes.append(("POST", f"/datacube/{name}", self._cube(name), True, False))
        for method, path, handler, auth, multipart in routes:
            app.add_api_route(
                path, self._endpoint(path, handler, auth, multipart), methods=[method]
            )

        async def unknown(request: Request, exc: Exception) -> JSONResponse:
            # WeChat answers an unknown path or method in its own shape, with HTTP 200
            with self.lock:
                out = _err(48001, "api unauthorized")
                self.requests.append(
                    Recorded(request.method, request.url.path, {}, errcode=48001, at=self.now())
                )
            return JSONResponse(out)

        app.add_exception_handler(404, unknown)
        app.add_exception_handler(405, unknown)
        return app

    def _cube(self, name: str) -> Callable[[dict[str, str], Any], dict[str, Any]]:
        return lambda q, body: self.datacube(name, body)

    def _endpoint(self, path: str, handler: Any, auth: bool, multipart: bool) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            q = dict(request.query_params)
            rec = Recorded(request.method, path, q, at=self.now())
            payload: Any = None
            if multipart:
                form = await request.form()
                f = form.get("media")
                if f is not None and not isinstance(f, str):
                    data = await f.read()
                    payload = (f.filename or "", data)
                    rec.upload = (f.filename or "", len(data))
                    rec.upload_type = f.content_type or ""
            else:
                raw = await request.body()
                rec.raw, rec.content_type = raw, request.headers.get("content-type", "")
                try:
                    payload = decode_body(raw) if raw else {}
                except ValueError:
                    payload = None
                rec.body = payload
            if self.delay:
                await asyncio.sleep(self.delay)
            with self.lock:
                self._tick()
                out = self._answer(path, q, payload, handler, auth, multipart)
                rec.errcode = int(out.get("errcode", 0) or 0)
                self.requests.append(rec)
            if path in self.slow:
                await asyncio.sleep(self.slow[path])
            while path in self.hold:
                await asyncio.sleep(0.02)
            return JSONResponse(out)

        return endpoint

    def _answer(
        self, path: str, q: dict[str, str], payload: Any, handler: Any, auth: bool, multipart: bool
    ) -> dict[str, Any]:
        if self.ip_blocked:
            return _err(40164, "invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist")
        if self.busy_left > 0 and (self.busy_paths is None or path in self.busy_paths):
            self.busy_left -= 1
            return _err(-1, "system error")
        if auth:
            bad = self._check_token(q)
            if bad:
                return bad
        if path in self.exhausted:
            return _err(45009, "reach max api daily quota limit")
        if path in self.fail_next:
            planned = self.fail_next[path]
            if isinstance(planned, int):
                del self.fail_next[path]
                return _err(planned, "injected failure")
            code = planned.pop(0)
            if not planned:
                del self.fail_next[path]
            return _err(code, "injected failure")
        if payload is None and not multipart:
            return _err(47001, "data format error")
        return dict(handler(q, payload))


@contextmanager
def run_fake(fake: FakeWeChat | None = None) -> Iterator[tuple[FakeWeChat, str]]:
    """Serve ``fake`` with uvicorn on a free 127.0.0.1 port in a thread; yields (fake, url)."""
    import uvicorn

    fake = fake or FakeWeChat()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(fake.app, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"fake-wechat-{port}"
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake WeChat server did not start")
        time.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
