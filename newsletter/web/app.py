"""The FastAPI application: public endpoints, subscriber pages, console, JSON API, webhooks."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from newsletter import __version__
from newsletter.web.public import router as public_router
from newsletter.web.subscriber import router as subscriber_router

__all__ = ["create_app", "create_asgi"]


def _api_lang(request: Any) -> str:
    """The console's language cookie, else Accept-Language (zh-TW/HK → zh-Hant, en)."""
    cookie = request.cookies.get("nl_lang")
    if cookie in ("zh", "zh-Hant", "en"):
        return str(cookie)
    accept = (request.headers.get("accept-language") or "").lower()
    first = accept.split(",")[0].strip()
    if first.startswith(("zh-tw", "zh-hk", "zh-hant", "zh-mo")):
        return "zh-Hant"
    if first.startswith("en"):
        return "en"
    return "zh"


def create_app() -> Any:
    """The application behind :class:`~.guard.Guard` (security headers, body limits).

    Swagger UI (``/docs``) loads its assets from a CDN, so it exists only in the
    embedded mode; ``/openapi.json`` is always there.
    """
    from newsletter.core.config import get_settings
    from newsletter.web.guard import Guard

    docs = "/docs" if get_settings().embedded_mode else None
    app = FastAPI(title="newsletter", version=__version__, docs_url=docs, redoc_url=None)
    from newsletter.web.archive import router as archive_router

    app.include_router(archive_router)  # before /archive/{slug}/{number}
    app.include_router(public_router)
    app.include_router(subscriber_router)
    from newsletter.delivery.webhooks import router as webhooks_router
    from newsletter.web.console import router as console_router
    from newsletter.web.console.warmup import router as warmup_router
    from newsletter.wechat.callback import router as wechat_router

    app.include_router(warmup_router)  # /console/warmup: relays and warm-up plans
    app.include_router(console_router)
    app.include_router(webhooks_router)
    app.include_router(wechat_router)
    from newsletter.web.metrics import router as metrics_router

    app.include_router(metrics_router)
    _out_of_range_is_not_found(app)
    from newsletter.web.console.routes import install_error_pages

    install_error_pages(app)
    _database_down_is_503(app)
    return Guard(app)


def _console_form(request: Any) -> bool:
    """A console page's form post (not the JSON API, not a script's fetch)."""
    kind = request.headers.get("content-type", "")
    return (
        request.method == "POST"
        and request.url.path.startswith("/console/")
        and ("form" in kind or not kind)
    )


def _same_page(request: Any) -> str:
    """Where the form was: the Referer's path on this console, else the console's home."""
    from urllib.parse import urlsplit

    ref = urlsplit(request.headers.get("referer", ""))
    path = ref.path if ref.path.startswith("/console/") and "//" not in ref.path else "/console/"
    return path + (f"?{ref.query}" if ref.query and path != "/console/" else "")


def _out_of_range_is_not_found(app: FastAPI) -> None:
    """A value the database cannot hold (an id too large for its column, a bad value) is
    the client's error: 422 with one line, never a server error."""
    from fastapi import Request
    from fastapi.responses import JSONResponse, Response
    from sqlalchemy.exc import DataError, StatementError

    async def bad_value(request: Request, exc: Exception) -> Response:
        if (
            isinstance(exc, StatementError)
            and not isinstance(exc.orig, (OverflowError, DataError))
            and not isinstance(exc, DataError)
        ):
            raise exc
        if _console_form(request):  # a person at a form: back to it, with one line
            from newsletter.web.console.flash import back

            return back(
                _same_page(request),
                "输入的值无法保存（数值超出范围或含有不允许的字符）"
                " / a value cannot be stored (out of range, or a character not allowed)",
                "error",
            )
        return JSONResponse(
            {"detail": "a value is out of range for its field / 数值超出范围"}, status_code=422
        )

    async def too_deep(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "input nested too deeply / 输入嵌套过深"}, status_code=400)

    from newsletter.web.console.api import Refused, refusal_body

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Refused)
        return JSONResponse(
            refusal_body(exc, _api_lang(request)), status_code=exc.status_code, headers=exc.headers
        )

    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(OverflowError, bad_value)
    app.add_exception_handler(StatementError, bad_value)
    app.add_exception_handler(RecursionError, too_deep)


DATABASE_DOWN = "数据库暂时不可用"
DATABASE_DOWN_LINE = (
    "数据库暂时不可用，请稍后再试 / the database is temporarily unavailable, try again later"
)


def _database_down_is_503(app: FastAPI) -> None:
    """While the database cannot be reached, every page answers 503 saying so (the
    console's own error page, a JSON ``{code, message}`` under /api), never a bare 500.
    Nothing here touches the database."""
    from fastapi import Request
    from fastapi.responses import HTMLResponse, JSONResponse
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout
    from starlette.responses import Response

    from newsletter.core.db import lost_connection

    retry = {"Retry-After": "30", "Cache-Control": "no-store"}

    async def database_down(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, PoolTimeout) and not lost_connection(exc):
            raise exc
        import logging

        logging.getLogger("newsletter.web").warning(
            "%s: %s %s: %s", DATABASE_DOWN_LINE, request.method, request.url.path,
            str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200],
        )  # fmt: skip
        path = request.url.path
        if path.startswith("/api"):
            body = {"code": "database_unavailable", "message": DATABASE_DOWN_LINE}
            return JSONResponse({**body, "detail": DATABASE_DOWN_LINE}, 503, headers=retry)
        if path.startswith("/console"):
            from newsletter.web.console.pages.common import page

            resp = page(request, "error.html", None, 503, message=DATABASE_DOWN, code=503)
            resp.headers.update(retry)
            return resp
        html = (
            '<!doctype html><html lang="zh-CN"><meta charset="utf-8">'
            f"<title>{DATABASE_DOWN}</title><h1>{DATABASE_DOWN}</h1>"
            "<p>请稍后再试。 / The database is temporarily unavailable; please try again later.</p>"
        )
        return HTMLResponse(html, 503, headers=retry)

    for kind in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(kind, database_down)


def create_asgi() -> Any:
    """What the server runs: the app behind the open pixel's fast path (see pixel.py).

    Outside the embedded mode it refuses to start without a real secret key
    (one line on stderr, exit status 2), however it is started (``newsletter
    web`` or ``uvicorn --factory``).
    """

    from newsletter.core.config import get_settings
    from newsletter.web.pixel import PixelFastPath

    problem = get_settings().secret_key_problem()
    if problem is not None:
        from newsletter.core.terminal import error_line

        error_line(f"网页服务拒绝启动：{problem} / web: refusing to start: {problem}")
        raise SystemExit(2)

    return PixelFastPath(create_app())
