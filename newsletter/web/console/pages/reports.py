"""Statistics for marketing: the dashboard, one send, comparisons, trends and CSV exports."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import (
    HTMLResponse,
    Response,
)

from newsletter.core.errors import NotFound
from newsletter.web.console import charts
from newsletter.web.console import services as svc
from newsletter.web.console.i18n import (
    translator,
)
from newsletter.web.console.pages.common import (
    Viewer,
    _error,
    _shown,
    lang_of,
    page,
)

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/stats", response_class=HTMLResponse)
def stats_page(
    request: Request,
    user: Viewer,
    from_: Annotated[str, Query(alias="from")] = "",
    to: str = "",
) -> HTMLResponse:
    """The trend over sends, optionally only those started from ``from`` to ``to``
    (``YYYY-MM-DD``, inclusive); tick 2 to 4 rows to compare them side by side."""
    error, status = None, 200
    try:
        since = svc.parse_day(from_[:40], "开始")
        until = svc.parse_day(to[:40], "结束")
        if since and until and since > until:
            raise svc.ConsoleError("开始日期晚于结束日期 / the start is after the end")
    except svc.ConsoleError as exc:
        since = until = None
        error, status = _error(exc), 422
    rows = svc.trends(since=since, until=until)
    email = [r for r in rows if r["channels"] == "email"]
    _ = translator(lang_of(request))
    chart = (
        charts.lines(
            _("独立打开率与独立点击率"),
            [f"#{r['issue']}" for r in email],
            [
                (_("独立打开率"), [r["open_rate"] for r in email], "#2f6fde"),
                (_("独立点击率"), [r["click_rate"] for r in email], "#b4520f"),
            ],
        )
        if email
        else None
    )
    return page(
        request,
        "stats.html",
        user,
        status,
        rows=list(reversed(rows)),
        chart=chart,
        date_from=from_[:40],
        date_to=to[:40],
        error=error,
        max_compare=svc.MAX_COMPARE,
    )


@router.get("/stats/compare", response_class=HTMLResponse)
def stats_compare(
    request: Request,
    user: Viewer,
    ids: Annotated[list[str], Query()] = [],  # noqa: B006
) -> HTMLResponse:
    """2 to 4 sends side by side: rates, human and machine opens, unsubscribes, links,
    variants and domains."""
    picked = [int(x) for x in ids[:20] if x.isdigit() and len(x) < 10]
    try:
        if len(picked) != len(ids[:20]):
            raise svc.ConsoleError("发送编号无效 / a send id is not a number")
        rows = svc.compare(picked)
    except NotFound as exc:
        return page(request, "compare.html", user, 404, rows=[], error=_error(exc))
    except svc.ConsoleError as exc:
        return page(request, "compare.html", user, 422, rows=[], error=_error(exc))
    variants = sorted({v["variant"] for r in rows for v in r["by_variant"]})
    groups = [g for g in dict.fromkeys(d["group"] for r in rows for d in r["by_domain"])]
    return page(
        request, "compare.html", user, rows=rows, error=None, variants=variants, groups=groups
    )


@router.get("/stats/trends.csv")
def trends_csv(request: Request, user: Viewer, headers: str = "") -> Response:
    """``headers=zh`` or ``en`` (default: the console's language)."""
    zh = (headers if headers in ("zh", "en") else lang_of(request)) != "en"
    return Response(
        svc.trends_csv(user, request, zh=zh),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="trends.csv"'},
    )


@router.get("/stats/{send_id}", response_class=HTMLResponse)
def stats_send_page(request: Request, user: Viewer, send_id: int) -> HTMLResponse:
    def show(data: dict[str, Any]) -> HTMLResponse:
        hours = _fill_hours(data["opens_by_hour"])
        tz = dt.timezone(dt.timedelta(hours=8))
        lang = lang_of(request)
        fmt = "%m-%d %H:00" if lang == "en" else "%m-%d %H时"
        labels = [dt.datetime.fromisoformat(h).astimezone(tz).strftime(fmt) for h, _n in hours]
        chart = charts.bars(
            translator(lang)("每小时打开总次数（人，含重复打开）"), labels, [n for _h, n in hours]
        )
        return page(request, "stats_send.html", user, d=data, chart=chart)

    return _shown(request, user, lambda: svc.stats(send_id), show)


def _fill_hours(rows: list[tuple[str, int]], limit: int = 168) -> list[tuple[str, int]]:
    """Hourly totals with the empty hours in between (at most ``limit`` hours, the latest)."""
    if not rows:
        return []
    have = {dt.datetime.fromisoformat(h): n for h, n in rows}
    first, last = min(have), max(have)
    first = max(first, last - dt.timedelta(hours=limit - 1))
    out = []
    at = first
    while at <= last:
        out.append((at.isoformat(), have.get(at, 0)))
        at += dt.timedelta(hours=1)
    return out


@router.get("/stats/{send_id}/export.xlsx")
def stats_xlsx(request: Request, user: Viewer, send_id: int, headers: str = "") -> Response:
    zh = (headers if headers in ("zh", "en") else lang_of(request)) != "en"
    try:
        body = svc.stats_xlsx(user, send_id, request, zh=zh)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(
        body,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="send-{send_id}.xlsx"'},
    )


@router.get("/stats/{send_id}/export.csv")
def stats_csv(request: Request, user: Viewer, send_id: int, headers: str = "") -> Response:
    zh = (headers if headers in ("zh", "en") else lang_of(request)) != "en"
    try:
        body = svc.stats_csv(user, send_id, request, zh=zh)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="send-{send_id}.csv"'},
    )
