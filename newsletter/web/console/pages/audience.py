"""Subscribers and lists: search, one subscriber, lists, segments, suppressions, bulk actions and their jobs, bounces."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import (
    HTMLResponse,
    Response,
    StreamingResponse,
)

from newsletter.core.errors import NewsletterError, NotFound
from newsletter.reports.history import subscriber_history
from newsletter.web.console import services as svc
from newsletter.web.console.flash import back
from newsletter.web.console.pages.common import (
    Ops,
    _done,
    _error,
    _shown,
    error_page,
    lang_of,
    page,
)
from newsletter.web.console.share import share_info

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/subscribers", response_class=HTMLResponse)
def subscribers_page(
    request: Request, user: Ops, q: str = "", list_id: str = "", status: str = ""
) -> HTMLResponse:
    # "全部" (all lists) sends an empty list_id; anything not a number means all lists too.
    lid = int(list_id) if list_id.strip().isdigit() and len(list_id.strip()) < 10 else None
    q = q.strip()[:200]
    status = status if status in svc.SEARCH_STATUSES else ""
    searched = bool(q or lid or status)
    results = svc.search_subscribers(q, lid, status=status) if searched else []
    matched = (len(results) if len(results) < 50 else svc.count_search(q, lid)) if results else 0
    return page(
        request,
        "subscribers.html",
        user,
        lists=svc.lists(),
        q=q,
        list_id=lid,
        results=results,
        searched=searched,
        status_filter=status,
        statuses=svc.SEARCH_STATUSES,
        segments=svc.segments(),
        suppressions=svc.suppressions(),
        match_count=matched,
    )


@router.get("/lists/{list_id}/export.csv")
def list_export(request: Request, user: Ops, list_id: int) -> Response:
    try:
        body = svc.export_list(user, list_id, request)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="list-{list_id}.csv"'},
    )


@router.get("/lists/{list_id}/export.xlsx")
def list_export_xlsx(request: Request, user: Ops, list_id: int) -> Response:
    try:
        body = svc.export_list_xlsx(user, list_id, lang_of(request), request)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(
        body,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="list-{list_id}.xlsx"'},
    )


@router.post("/subscribers/segments")
def segment_save(
    request: Request,
    user: Ops,
    name: Annotated[str, Form()] = "",
    definition: Annotated[str, Form()] = "",
) -> Response:
    def save() -> dict[str, Any]:
        try:
            defn = json.loads(definition or "null")
        except json.JSONDecodeError as exc:
            raise svc.ConsoleError(f"JSON: {exc.msg} (line {exc.lineno})") from None
        return svc.save_segment(user, name, defn, request)

    return _done(save, "/console/subscribers#segments", "分群已保存 / segment saved")


@router.post("/subscribers/suppressions")
def suppression_add(
    request: Request,
    user: Ops,
    email: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    return _done(
        lambda: svc.add_suppression(user, email, note, request),
        "/console/subscribers#suppressions",
        "已添加 / added",
        also=(ValueError,),
    )


@router.post("/subscribers/suppressions/remove")
def suppression_remove(request: Request, user: Ops, email: Annotated[str, Form()] = "") -> Response:
    return _done(
        lambda: svc.remove_suppression(user, email, request),
        "/console/subscribers#suppressions",
        "已移除 / removed",
        also=(ValueError,),
    )


def _search_url(q: str, list_id: str) -> str:
    from urllib.parse import urlencode

    return "/console/subscribers?" + urlencode({"q": q[:200], "list_id": list_id[:12]}) + "#search"


@router.post("/lists")
def list_create(
    request: Request,
    user: Ops,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    double_opt_in: Annotated[str, Form()] = "",
) -> Response:
    return _done(
        lambda: svc.create_list(user, name, description, double_opt_in == "on", request),
        "/console/subscribers#lists",
        lambda out: f"列表“{out['name']}”已创建 / list created",
    )


@router.get("/lists/{list_id}", response_class=HTMLResponse)
def list_page(request: Request, user: Ops, list_id: int) -> HTMLResponse:
    found = [x for x in svc.lists() if x["id"] == list_id]
    if not found:
        return error_page(request, 404)
    welcome = svc.welcome_series(list_id)["steps"]
    return page(request, "list.html", user, l=found[0], share=share_info(list_id), welcome=welcome)


@router.post("/lists/{list_id}")
def list_update(
    request: Request,
    user: Ops,
    list_id: int,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    double_opt_in: Annotated[str, Form()] = "",
) -> Response:
    return _done(
        lambda: svc.update_list(user, list_id, name, description, double_opt_in == "on", request),
        "/console/subscribers#lists",
        "已保存 / saved",
        back_to=f"/console/lists/{list_id}",
        missing=request,
    )


@router.post("/lists/{list_id}/delete")
def list_delete(request: Request, user: Ops, list_id: int) -> Response:
    return _done(
        lambda: svc.delete_list(user, list_id, request),
        "/console/subscribers#lists",
        lambda name: f"列表“{name}”已删除 / list deleted",
        back_to=f"/console/lists/{list_id}",
        missing=request,
    )


@router.post("/subscribers/bulk")
async def subscribers_bulk(request: Request, user: Ops) -> Response:
    form = await request.form()
    q, from_raw = str(form.get("q") or ""), str(form.get("list_id") or "")
    to_raw, action = str(form.get("to_list") or ""), str(form.get("action") or "")
    ids = [
        int(x) for x in form.getlist("ids") if isinstance(x, str) and x.isdigit() and len(x) < 19
    ]
    here = _search_url(q, from_raw)
    words = {
        "unsubscribe": "已退订 / unsubscribed",
        "move": "已移动 / moved",
        "block": "已封禁 / blocked",
        "delete": "已删除 / deleted",
    }
    return _done(
        lambda: svc.bulk_subscribers(
            user,
            ids,
            action,
            from_list=int(from_raw) if from_raw.isdigit() and len(from_raw) < 10 else None,
            to_list=int(to_raw) if to_raw.isdigit() and len(to_raw) < 10 else None,
            request=request,
        ),
        here,
        lambda n: f"{n} 人{words[action]}",
    )


def _num(raw: str) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


@router.post("/subscribers/bulk-job")
async def subscribers_bulk_job(request: Request, user: Ops) -> Response:
    """A bulk action over every subscriber of the search (or of a segment), as a job."""
    form = await request.form()
    q, list_raw = str(form.get("q") or ""), str(form.get("list_id") or "")
    seg_raw, to_raw = str(form.get("segment_id") or ""), str(form.get("to_list") or "")
    action = str(form.get("action") or "")
    here = _search_url(q, list_raw) if not seg_raw else "/console/subscribers#segments"
    return _job_started(
        lambda: svc.start_bulk_job(
            user,
            action,
            q=q,
            list_id=_num(list_raw),
            segment_id=_num(seg_raw),
            to_list=_num(to_raw),
            request=request,
        ),
        here,
    )


def _job_started(call: Callable[[], dict[str, Any]], back_to: str) -> Response:
    """Start a job and go to its page; a refusal goes back with the reason."""
    try:
        job = call()
    except NewsletterError as exc:
        return back(back_to, _error(exc), "error")
    return back(f"/console/jobs/{job['id']}", "已加入后台任务 / queued as a job")


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, user: Ops) -> HTMLResponse:
    return page(request, "jobs.html", user, jobs=svc.list_jobs(100))


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, user: Ops, job_id: int) -> HTMLResponse:
    return _shown(
        request,
        user,
        lambda: svc.get_job(job_id),
        lambda job: page(request, "job.html", user, job=job),
    )


@router.post("/jobs/{job_id}/resume")
def job_resume(request: Request, user: Ops, job_id: int) -> Response:
    return _job_started(lambda: svc.resume_job(user, job_id, request), f"/console/jobs/{job_id}")


@router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse)
def subscriber_page(request: Request, user: Ops, subscriber_id: int) -> HTMLResponse:
    try:
        sub = svc.get_subscriber(subscriber_id)
    except NotFound:
        return error_page(request, 404)
    return page(request, "subscriber.html", user, s=sub, history=subscriber_history(subscriber_id))


@router.post("/subscribers/{subscriber_id}")
def subscriber_update(
    request: Request,
    user: Ops,
    subscriber_id: int,
    name: Annotated[str, Form()] = "",
    variant: Annotated[str, Form()] = "zh-Hans",
) -> Response:
    return _done(
        lambda: svc.update_subscriber(user, subscriber_id, name, variant, request),
        f"/console/subscribers/{subscriber_id}",
        "已保存 / saved",
        missing=request,
    )


@router.post("/subscribers/{subscriber_id}/delete")
def subscriber_delete(request: Request, user: Ops, subscriber_id: int) -> Response:
    return _done(
        lambda: svc.bulk_subscribers(user, [subscriber_id], "delete", request=request),
        "/console/subscribers",
        "已删除 / deleted",
        back_to=f"/console/subscribers/{subscriber_id}",
    )


@router.get("/bounces", response_class=HTMLResponse)
def bounces_page(request: Request, user: Ops, kind: str = "", p: str = "1") -> HTMLResponse:
    n = int(p) if p.isdigit() and len(p) < 6 else 1
    data = svc.bounces(kind, n)
    return page(
        request,
        "bounces.html",
        user,
        d=data,
        kind=kind if kind in svc.BOUNCE_REASONS else "",
        pages=max(1, -(-data["total"] // data["per_page"])),
    )
