"""Sends: the list, one send's progress by relay and channel, pause, resume and cancel."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import (
    HTMLResponse,
    Response,
)

from newsletter.web.console import services as svc
from newsletter.web.console.i18n import (
    SEND_ACTIONS,
    SEND_STATES,
)
from newsletter.web.console.pages.common import (
    Ops,
    Viewer,
    _done,
    _shown,
    page,
)
from newsletter.web.console.services.relays import send_relay_facts
from newsletter.web.console.subjects import subject_panel

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/sends", response_class=HTMLResponse)
def sends_page(
    request: Request, user: Viewer, q: str = "", state: str = "", p: str = "1"
) -> HTMLResponse:
    state = state if state in SEND_STATES else ""
    n = int(p) if p.isdigit() and len(p) < 6 else 1
    data = svc.search_sends(q, state, n)
    return page(request, "sends.html", user, d=data, sends=data["rows"], q=q[:100], state=state)


@router.get("/sends/{send_id}", response_class=HTMLResponse)
def send_page(request: Request, user: Viewer, send_id: int) -> HTMLResponse:
    def shown(prog: dict[str, Any]) -> HTMLResponse:
        prog.update(send_relay_facts(send_id))  # relays and warm-up of the send
        return page(
            request,
            "send.html",
            user,
            s=prog,
            progress_json=json.dumps(prog, default=str),
            test=subject_panel(send_id),
        )

    return _shown(request, user, lambda: svc.progress(send_id), shown)


@router.post("/sends/{send_id}/{action}")
def send_action(request: Request, user: Ops, send_id: int, action: str) -> Response:
    if action not in ("start", "pause", "resume", "cancel"):
        raise HTTPException(404)
    return _done(
        lambda: svc.control_send(user, send_id, action, request),
        f"/console/sends/{send_id}",
        SEND_ACTIONS[action],
    )
