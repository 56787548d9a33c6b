"""排期 (ops): each publication's weekly slot with a picker in its own time zone, the next
slots, the default list's reach, and the sends already scheduled for the coming weeks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from newsletter.web.console import services as svc
from newsletter.web.console.pages.common import Ops, _done, page

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/schedule", response_class=HTMLResponse)
def schedule_page(request: Request, user: Ops) -> HTMLResponse:
    return page(
        request,
        "schedule.html",
        user,
        pubs=svc.schedule_overview(),
        lists=svc.lists(counts=False),
        zones=svc.ZONES,
        weekdays=svc.WEEKDAYS,
    )


@router.post("/schedule/{slug}")
def schedule_set(
    request: Request,
    user: Ops,
    slug: str,
    weekday: Annotated[int, Form()],
    time: Annotated[str, Form()],
    timezone: Annotated[str, Form()] = "Asia/Shanghai",
    default_list: Annotated[str, Form()] = "",
) -> Response:
    return _done(
        lambda: svc.update_schedule(user, weekday, time, timezone, default_list, request, slug),
        "/console/schedule",
        "每周时段已保存 / weekly slot saved",
    )
