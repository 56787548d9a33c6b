"""Console page ``/console/warmup``: the relays in service and each domain's warm-up plan
with today's allowance; and the per-relay / per-day facts of one send for its page.

Read-only: plans are set with `newsletter warmup set` (or ``warmup_domains`` in the
settings). Relay passwords are never shown.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from newsletter.web.console.pages.common import Viewer, page
from newsletter.web.console.services.relays import overview

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/warmup", response_class=HTMLResponse)
def warmup_page(request: Request, user: Viewer) -> HTMLResponse:
    return page(request, "warmup.html", user, **overview())
