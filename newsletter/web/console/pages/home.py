"""The console's home (what is going out, what came back) and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from newsletter.web.console import charts
from newsletter.web.console import services as svc
from newsletter.web.console.flash import back
from newsletter.web.console.i18n import (
    translator,
)
from newsletter.web.console.pages.common import (
    Admin,
    Viewer,
    lang_of,
    page,
)

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, user: Viewer) -> HTMLResponse:
    return page(
        request,
        "home.html",
        user,
        counts=svc.dashboard(),
        sends=svc.list_sends(limit=8),
        issues=svc.list_issues(limit=5),
        charts=_home_charts(lang_of(request)),
        queue=svc.review_queue(user) if user.can("editor") else None,
        notices=svc.my_notices(user),
    )


@router.post("/notices/read")
def notices_read(request: Request, user: Viewer) -> Response:
    """Every unread review notice of this person is marked read."""
    svc.mark_notices_read(user)
    return back("/console/", "已标为已读 / marked as read")


#: Line colours of the list-growth chart (AA contrast on white).
_SERIES = ("#2f6fde", "#b4520f", "#1d7a3a", "#8a3ab9", "#a3243b")


def _home_charts(lang: str) -> dict[str, Any]:
    """The dashboard's charts (server-drawn SVG), or None where there is no data yet."""
    d = svc.charts_data()
    _ = translator(lang)
    labels = [w[5:].replace("-", "/") for w in d["weeks"]]
    return {
        "sends": charts.bars(_("每周发送邮件数（计划收件人）"), labels, d["recipients"])
        if d["has_sends"]
        else None,
        "opens_unique": charts.bars(
            _("每周独立打开（人，首次打开）"), labels, d["opens_unique"], color="#1d7a3a"
        )
        if d["has_opens"]
        else None,
        "opens_total": charts.bars(
            _("每周打开总次数（人，含重复打开）"), labels, d["opens_total"], color="#b4520f"
        )
        if d["has_opens"]
        else None,
        "growth": charts.lines(
            _("各列表有效订阅（每周末）"),
            labels,
            [(x["name"], x["values"], _SERIES[i % len(_SERIES)]) for i, x in enumerate(d["lists"])],
            percent=False,
        )
        if d["has_lists"]
        else None,
        "data": d,
    }


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, user: Admin) -> HTMLResponse:
    return page(request, "audit.html", user, entries=svc.audit_entries(200))
