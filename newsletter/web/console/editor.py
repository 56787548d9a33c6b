"""The source editor: ``/console/editor/<issue id>`` (editor role and up).

The page holds the source in a text area, the lint list and a preview of every
channel in either variant; ``editor.js`` posts the text to ``…/preview`` a moment
after typing stops and redraws both. Saving posts the form: a new version of the
draft, or the same page again with everything typed kept and one line saying why.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from newsletter.core.errors import NewsletterError, NotFound
from newsletter.web.console.auth import Principal, need
from newsletter.web.console.flash import back
from newsletter.web.console.i18n import LINT_CODES
from newsletter.web.console.pages.common import lang_of, out_of_tab_order, said
from newsletter.web.console.services import editor as svc

__all__ = ["router"]

router = APIRouter(prefix="/console/editor", include_in_schema=False)
Editor = Annotated[Principal, Depends(need("editor"))]


def _page(
    request: Request,
    user: Principal,
    state: dict[str, Any],
    status: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    from newsletter.web.console.pages.common import page

    return page(
        request, "editor.html", user, status, issue=state, error=error, lint_codes=LINT_CODES
    )


@router.get("/{issue_id}", response_class=HTMLResponse)
def editor_page(request: Request, user: Editor, issue_id: int) -> HTMLResponse:
    from newsletter.web.console.pages.common import _missing

    try:
        state = svc.editor_state(issue_id)
    except NotFound:
        return _missing(request, user)
    return _page(request, user, state)


@router.post("/{issue_id}/preview")
def editor_preview(
    request: Request,
    user: Editor,
    issue_id: int,
    payload: Annotated[dict[str, Any], Body()],
) -> Response:
    source = payload.get("source")
    variant = payload.get("variant", "zh-Hans")
    if not isinstance(source, str) or not isinstance(variant, str):
        return JSONResponse({"detail": "source must be text / 源文件须为文本"}, 422)
    try:
        out = svc.live_preview(issue_id, source, variant)
    except NotFound as exc:
        return JSONResponse({"detail": said(str(exc), lang_of(request))}, 404)
    except NewsletterError as exc:
        return JSONResponse({"detail": said(str(exc).splitlines()[0][:300], lang_of(request))}, 422)
    lang = lang_of(request)  # the lint in the reader's language, as on the issue page
    for key in ("messages", "budgets"):
        for m in out["lint"].get(key, []):
            m["message"] = said(str(m["message"]), lang)
    out["errors"] = {k: said(str(v), lang) for k, v in out.get("errors", {}).items()}
    out["outputs"] = {k: out_of_tab_order(str(v)) for k, v in out.get("outputs", {}).items()}
    return JSONResponse(out)


@router.post("/{issue_id}", response_class=HTMLResponse)
def editor_save(
    request: Request,
    user: Editor,
    issue_id: int,
    source: Annotated[str, Form()] = "",
) -> Response:
    from newsletter.web.console.pages.common import _error, _missing

    try:
        out = svc.save_source(user, issue_id, source, request)
    except NotFound:
        return _missing(request, user)
    except NewsletterError as exc:
        try:
            state = svc.editor_state(issue_id)
        except NotFound:
            return _missing(request, user)
        state["source"] = source  # everything typed is kept
        return _page(request, user, state, 422, _error(exc))
    note = (
        "已保存 / saved"
        if out["id"] == issue_id
        else (f"已另存为第{out['number']}期 / saved as issue {out['number']}")
    )
    return back(f"/console/issues/{out['id']}", note)
