"""Console page ``/console/warmup``: the relays in service and each domain's warm-up plan
with today's allowance; and the per-relay / per-day facts of one send for its page.

Read-only: plans are set with `newsletter warmup set` (or ``warmup_domains`` in the
settings). Relay passwords are never shown.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ...db import session_scope
from .routes import Viewer, page

__all__ = ["router", "send_relay_facts"]

router = APIRouter(prefix="/console", include_in_schema=False)


def send_relay_facts(send_id: int) -> dict[str, Any]:
    """{"relays": {name: sent}, "warmup_days": {day: due}} of a send (for its page)."""
    from ...delivery.relays import relay_counts
    from ...delivery.warmup import send_plan

    with session_scope() as s:
        plan = send_plan(s, send_id)
        return {
            "relays": relay_counts(s, send_id),
            "warmup_days": plan if len(plan) > 1 else {},
        }


def overview() -> dict[str, Any]:
    from ...delivery.relays import RelayConfigError, status
    from ...delivery.warmup import allowance, plans

    try:
        relays: list[dict[str, Any]] = status()
        relay_error = None
    except RelayConfigError as exc:
        relays, relay_error = [], str(exc)
    with session_scope() as s:
        domains = sorted(plans(s))
        warm = [a for a in (allowance(s, d) for d in domains) if a is not None]
    return {"relays": relays, "relay_error": relay_error, "plans": warm}


@router.get("/warmup", response_class=HTMLResponse)
def warmup_page(request: Request, user: Viewer) -> HTMLResponse:
    return page(request, "warmup.html", user, **overview())
