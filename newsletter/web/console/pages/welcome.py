"""A list's welcome series (editor and above): its steps with their figures, a form to add
one, each step's edit page with its preview in both scripts, reorder and delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from newsletter.core.errors import NewsletterError, NotFound
from newsletter.web.console import services as svc
from newsletter.web.console.flash import back
from newsletter.web.console.pages.common import Editor, _done, _error, _shown, page

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/lists/{list_id}/welcome", response_class=HTMLResponse)
def welcome_page(request: Request, user: Editor, list_id: int) -> HTMLResponse:
    return _shown(
        request,
        user,
        lambda: svc.welcome_series(list_id),
        lambda series: page(request, "welcome.html", user, series=series),
    )


@router.post("/lists/{list_id}/welcome")
def welcome_add(
    request: Request,
    user: Editor,
    list_id: int,
    source: Annotated[str, Form()] = "",
    delay: Annotated[str, Form()] = "立即",
) -> Response:
    here = f"/console/lists/{list_id}/welcome"
    try:
        out = svc.add_welcome_step(user, list_id, source, delay, request)
    except NotFound:
        raise HTTPException(404) from None
    except NewsletterError as exc:
        return back(here, _error(exc), "error")
    return back(f"{here}/{out['id']}", "已添加 / step added")


@router.get("/lists/{list_id}/welcome/{step_id}", response_class=HTMLResponse)
def welcome_step_page(request: Request, user: Editor, list_id: int, step_id: int) -> HTMLResponse:
    return _shown(
        request,
        user,
        lambda: (svc.welcome_step(list_id, step_id), svc.welcome_series(list_id)["list"]),
        lambda found: page(
            request,
            "welcome_step.html",
            user,
            step=found[0],
            lst=found[1],
            lint=svc.lint_welcome_step(list_id, found[0]["source"]),
        ),
    )


@router.post("/lists/{list_id}/welcome/{step_id}")
def welcome_save(
    request: Request,
    user: Editor,
    list_id: int,
    step_id: int,
    source: Annotated[str, Form()] = "",
    delay: Annotated[str, Form()] = "",
) -> Response:
    here = f"/console/lists/{list_id}/welcome/{step_id}"
    return _done(
        lambda: svc.update_welcome_step(
            user, list_id, step_id, source=source or None, delay=delay or None, request=request
        ),
        here,
        "已保存 / saved",
        missing=request,
    )


@router.post("/lists/{list_id}/welcome/{step_id}/move")
def welcome_move(
    request: Request,
    user: Editor,
    list_id: int,
    step_id: int,
    direction: Annotated[str, Form()] = "",
) -> Response:
    return _done(
        lambda: svc.move_welcome_step(user, list_id, step_id, direction, request),
        f"/console/lists/{list_id}/welcome",
        "顺序已调整 / moved",
        missing=request,
    )


@router.post("/lists/{list_id}/welcome/{step_id}/delete")
def welcome_delete(request: Request, user: Editor, list_id: int, step_id: int) -> Response:
    return _done(
        lambda: svc.delete_welcome_step(user, list_id, step_id, request),
        f"/console/lists/{list_id}/welcome",
        "已删除 / deleted",
        missing=request,
    )


@router.get("/lists/{list_id}/welcome/{step_id}/frame", response_class=HTMLResponse)
def welcome_frame(user: Editor, list_id: int, step_id: int, v: str = "zh-Hans") -> HTMLResponse:
    try:
        body = svc.welcome_frame(list_id, step_id, v)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    # As the issues' preview: its own sandboxed origin, no script, no access to the console.
    return HTMLResponse(
        body,
        headers={
            "Content-Security-Policy": "sandbox; default-src 'none'; img-src * data:; "
            "style-src 'unsafe-inline'; font-src * data:",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
