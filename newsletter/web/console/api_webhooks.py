"""The JSON API of event webhooks (admin): endpoints and their delivery attempts.
Refusals are ``{code, message, detail}`` like the rest of ``/api`` (the same route class)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from newsletter.web.console import services as svc
from newsletter.web.console.api import ERRORS, Admin, _Route

__all__ = ["router"]

router = APIRouter(prefix="/api", route_class=_Route)


class WebhookIn(BaseModel):
    url: str = Field(max_length=2000)
    events: list[str] = Field(min_length=1, max_length=20)
    description: str = Field(default="", max_length=200)
    #: ``whsec_`` + base64 of at least 24 bytes; empty: one is made (and returned once)
    secret: str = Field(default="", max_length=200)


class WebhookPatch(BaseModel):
    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=20)
    active: bool | None = None
    description: str | None = Field(default=None, max_length=200)


@router.get("/webhooks", responses=ERRORS, tags=["webhooks"])
def webhooks(user: Admin) -> list[dict[str, Any]]:
    return svc.webhooks()


@router.post("/webhooks", responses=ERRORS, tags=["webhooks"], status_code=201)
def create_webhook(request: Request, user: Admin, body: WebhookIn) -> dict[str, Any]:
    return svc.create_webhook(user, body.url, body.events, body.description, body.secret, request)


@router.get("/webhooks/{endpoint_id}", responses=ERRORS, tags=["webhooks"])
def webhook(user: Admin, endpoint_id: int) -> dict[str, Any]:
    return svc.webhook(endpoint_id)


@router.patch("/webhooks/{endpoint_id}", responses=ERRORS, tags=["webhooks"])
def patch_webhook(
    request: Request, user: Admin, endpoint_id: int, body: WebhookPatch
) -> dict[str, Any]:
    return svc.update_webhook(
        user,
        endpoint_id,
        url=body.url,
        events=body.events,
        active=body.active,
        description=body.description,
        request=request,
    )


@router.delete("/webhooks/{endpoint_id}", responses=ERRORS, tags=["webhooks"], status_code=204)
def delete_webhook(request: Request, user: Admin, endpoint_id: int) -> Response:
    svc.delete_webhook(user, endpoint_id, request)
    return Response(status_code=204)


@router.get("/webhooks/{endpoint_id}/attempts", responses=ERRORS, tags=["webhooks"])
def webhook_attempts(user: Admin, endpoint_id: int, limit: int = 100) -> list[dict[str, Any]]:
    return svc.webhook_attempts(endpoint_id, max(1, min(limit, 1000)))
