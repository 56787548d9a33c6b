"""The JSON API of statistics: trends and each send's figures, as JSON or CSV.  Refusals
are ``{code, message, detail}`` like the rest of ``/api`` (the same route class)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from newsletter.web.console import services as svc
from newsletter.web.console.api import ERRORS, Viewer, _Route

__all__ = ["router"]

router = APIRouter(prefix="/api", route_class=_Route)


@router.get("/stats/trends", responses=ERRORS, tags=["stats"])
def trends(user: Viewer, limit: int = 100) -> list[dict[str, Any]]:
    return svc.trends(max(1, min(limit, 500)))


@router.get("/stats/trends.csv", responses=ERRORS, tags=["stats"])
def trends_csv(request: Request, user: Viewer) -> Response:
    return Response(svc.trends_csv(user, request), media_type="text/csv; charset=utf-8")


@router.get("/stats/sends/{send_id}.csv", responses=ERRORS, tags=["stats"])
def send_stats_csv(request: Request, user: Viewer, send_id: int) -> Response:
    return Response(svc.stats_csv(user, send_id, request), media_type="text/csv; charset=utf-8")


@router.get("/stats/sends/{send_id}", responses=ERRORS, tags=["stats"])
def send_stats(user: Viewer, send_id: int) -> dict[str, Any]:
    return svc.stats(send_id)
