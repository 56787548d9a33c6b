"""The JSON API of sends: create, start, pause, resume, cancel, progress.  Refusals are
``{code, message, detail}`` like the rest of ``/api`` (the same route class)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from newsletter.web.console import services as svc
from newsletter.web.console.api import ERRORS, Ops, Viewer, _Route

__all__ = ["router"]

router = APIRouter(prefix="/api", route_class=_Route)


class SendIn(BaseModel):
    issue_id: int
    list_id: int
    variant: Literal["preference", "zh-Hans", "zh-Hant"] = "preference"
    segment_id: int | None = None
    #: "now" creates a draft send (start it with POST /api/sends/{id}/start); "schedule" uses `at`
    #: or the publication's next weekly slot.
    mode: Literal["now", "schedule"] = "now"
    at: dt.datetime | None = None
    start: bool = False


@router.get("/sends", responses=ERRORS, tags=["sends"])
def sends(user: Viewer, limit: int = 100) -> list[dict[str, Any]]:
    return svc.list_sends(max(1, min(limit, 500)))


@router.post("/sends", responses=ERRORS, tags=["sends"], status_code=201)
def create_send(request: Request, user: Ops, body: SendIn) -> dict[str, Any]:
    out = svc.create_send(
        user,
        body.issue_id,
        body.list_id,
        variant_rule=body.variant,
        segment_id=body.segment_id,
        at=body.at,
        schedule=body.mode == "schedule",
        request=request,
    )
    if body.start and body.mode == "now":
        return svc.control_send(user, out["id"], "start", request)
    return out


@router.get("/sends/{send_id}", responses=ERRORS, tags=["sends"])
def send_progress(user: Viewer, send_id: int) -> dict[str, Any]:
    """State, delivery counts, percent done, rate, remaining and the WeChat channel's state."""
    return svc.progress(send_id)


@router.post("/sends/{send_id}/{action}", responses=ERRORS, tags=["sends"])
def send_control(
    request: Request,
    user: Ops,
    send_id: int,
    action: Literal["start", "pause", "resume", "cancel"],
) -> dict[str, Any]:
    return svc.control_send(user, send_id, action, request)
