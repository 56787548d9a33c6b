"""Event webhooks (admin): the endpoints, a form to add one, and each one's attempts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from newsletter.core.errors import NewsletterError
from newsletter.core.events import EVENT_TYPES
from newsletter.web.console import services as svc
from newsletter.web.console.flash import back
from newsletter.web.console.pages.common import Admin, _done, _error, _shown, page

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, user: Admin) -> HTMLResponse:
    return page(
        request,
        "webhooks.html",
        user,
        endpoints=svc.webhooks(),
        event_types=EVENT_TYPES,
        created=None,
    )


@router.post("/webhooks", response_class=HTMLResponse)
def webhook_create(
    request: Request,
    user: Admin,
    url: Annotated[str, Form()] = "",
    events: Annotated[list[str] | None, Form()] = None,
    description: Annotated[str, Form()] = "",
) -> Response:
    try:
        created = svc.create_webhook(user, url, events or [], description, request=request)
    except NewsletterError as exc:
        return back("/console/webhooks", _error(exc), "error")
    # The secret is shown once, in this response only.
    return page(
        request,
        "webhooks.html",
        user,
        endpoints=svc.webhooks(),
        event_types=EVENT_TYPES,
        created=created,
    )


@router.get("/webhooks/{endpoint_id}", response_class=HTMLResponse)
def webhook_page(request: Request, user: Admin, endpoint_id: int) -> HTMLResponse:
    return _shown(
        request,
        user,
        lambda: (svc.webhook(endpoint_id), svc.webhook_attempts(endpoint_id)),
        lambda found: page(
            request,
            "webhook.html",
            user,
            endpoint=found[0],
            attempts=found[1],
            event_types=EVENT_TYPES,
        ),
    )


@router.post("/webhooks/{endpoint_id}")
def webhook_update(
    request: Request,
    user: Admin,
    endpoint_id: int,
    active: Annotated[str, Form()] = "",
    events: Annotated[list[str] | None, Form()] = None,
) -> Response:
    return _done(
        lambda: svc.update_webhook(
            user,
            endpoint_id,
            active=None if active == "" else active == "1",
            events=events or None,
            request=request,
        ),
        f"/console/webhooks/{endpoint_id}",
        "已保存 / saved",
        missing=request,
    )


@router.post("/webhooks/{endpoint_id}/delete")
def webhook_delete(request: Request, user: Admin, endpoint_id: int) -> Response:
    return _done(
        lambda: svc.delete_webhook(user, endpoint_id, request),
        "/console/webhooks",
        "已删除 / deleted",
        missing=request,
    )
