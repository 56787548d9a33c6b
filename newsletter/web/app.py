"""The FastAPI application: public endpoints now; console and JSON API mount here too."""

from __future__ import annotations

from fastapi import FastAPI

from .. import __version__
from .public import router as public_router
from .subscriber import router as subscriber_router

__all__ = ["create_app"]


def create_app() -> FastAPI:
    app = FastAPI(title="newsletter", version=__version__)
    app.include_router(public_router)
    app.include_router(subscriber_router)
    app.include_router(__import__("newsletter.web.console", fromlist=["router"]).router)
    from ..delivery.webhooks import router as webhooks_router
    from ..wechat.callback import router as wechat_router

    app.include_router(webhooks_router)
    app.include_router(wechat_router)
    return app
