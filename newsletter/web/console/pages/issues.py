"""Issues: the list, upload, plain-text import, one issue's preview, approval, test send, and the send it schedules."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import (
    HTMLResponse,
    Response,
)

from newsletter.core.errors import NewsletterError, NotFound
from newsletter.web.console import services as svc
from newsletter.web.console.flash import back
from newsletter.web.console.i18n import (
    DELIVERY_STATES,
)
from newsletter.web.console.pages.common import (
    Editor,
    Ops,
    Viewer,
    _done,
    _error,
    _missing,
    out_of_tab_order,
    page,
)

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/issues", response_class=HTMLResponse)
def issues_page(request: Request, user: Viewer) -> HTMLResponse:
    return page(request, "issues.html", user, issues=svc.list_issues())


@router.post("/issues")
async def issues_upload(
    request: Request,
    user: Editor,
    file: Annotated[UploadFile | None, File()] = None,
    source: Annotated[str, Form()] = "",
    images: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    data, name = b"", "issue.md"
    if file is not None and file.filename:
        data, name = await file.read(), file.filename
    elif source.strip():
        data = source.replace("\r\n", "\n").encode()
    imgs = [(im.filename or "", await im.read()) for im in images or [] if im.filename]
    try:
        out = svc.upload_issue(user, name, data, imgs, request)
    except NewsletterError as exc:
        # Shown on the same page with everything the user typed still in the form.
        return page(
            request,
            "issues.html",
            user,
            422,
            issues=svc.list_issues(),
            source=source,
            error=_error(exc, "上传失败 / upload failed"),
        )
    return back(f"/console/issues/{out['id']}", f"第{out['number']}期已保存 / saved")


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request, user: Editor) -> HTMLResponse:
    return page(request, "import.html", user, result=None, **_import_extras())


def _import_classes() -> tuple[str, ...]:
    from newsletter.content.textimport import CLASSES

    return CLASSES


def _import_extras() -> dict[str, Any]:
    from newsletter.content.textimport import CLASS_LABELS

    return {
        "classes": _import_classes(),
        "labels": CLASS_LABELS,
        "publications": svc.publication_choices(),
    }


@router.post("/import", response_class=HTMLResponse)
async def import_run(request: Request, user: Editor) -> Response:
    """Import pasted text (or a file), or re-run it with the editor's reclassifications."""

    from starlette.datastructures import UploadFile as FormFile

    from newsletter.content.textimport import parse_hints

    form = await request.form()
    upload = form.get("file")
    data = b""
    name = ""
    doc = str(form.get("doc") or "")
    if isinstance(upload, FormFile) and upload.filename:
        data = await upload.read()
        name = upload.filename
        doc = ""
    elif str(form.get("html") or "").strip() and not doc:
        # rich text pasted from a browser or Word: its markup carries the structure
        data = str(form.get("html")).encode()
        name = "pasted.html"
    else:
        data = str(form.get("text") or "").replace("\r\n", "\n").encode()
    try:
        previous = json.loads(str(form.get("classes") or "{}"))
        hints = parse_hints(json.loads(str(form.get("hints") or "{}")))
        corrections: dict[int, str] = {}
        for key, value in form.items():
            if key.startswith("c") and key[1:].isdigit() and previous.get(key[1:]) != value:
                corrections |= parse_hints({key[1:]: str(value)})
        # promote / demote: a button that sets one line's class ("n:section", "n:item")
        line, _, wanted = str(form.get("set") or "").partition(":")
        if line.isdigit() and wanted in ("section", "item") and previous.get(line) != wanted:
            corrections |= parse_hints({line: wanted})
        hints |= corrections
        publication = str(form.get("publication") or "")
        if publication and corrections:  # kept as the publication's house style
            svc.learn_import_rules(user, publication, str(form.get("text") or ""), doc, corrections)
        raw_number = str(form.get("number") or "").strip()
        number = int(raw_number) if raw_number.isdigit() else None
        result = svc.import_preview(
            data, hints, number, name=name, doc=doc, publication=publication
        )
    except (ValueError, NewsletterError) as exc:
        return page(
            request,
            "import.html",
            user,
            422,
            result=None,
            **_import_extras(),
            text="" if name else data.decode("utf-8", "replace"),
            number=str(form.get("number") or ""),
            error=_error(exc, "导入失败 / import failed"),
        )
    classes = {str(n): cls for n, cls, _t in result["outline"]}
    return page(
        request,
        "import.html",
        user,
        result=result,
        **_import_extras(),
        shown=json.dumps(classes),
        chosen=publication,
        hints_json=json.dumps(result["hints"]),
        number=raw_number,
    )


@router.post("/import/save")
def import_save(
    request: Request,
    user: Editor,
    markdown: Annotated[str, Form()] = "",
    doc: Annotated[str, Form()] = "",
    publication: Annotated[str, Form()] = "",
) -> Response:
    try:
        out = svc.upload_issue(
            user,
            "import.md",
            markdown.replace("\r\n", "\n").encode(),
            svc.import_images(doc),
            request,
            publication=publication or None,
        )
    except NewsletterError as exc:
        kept: dict[str, Any] = {
            "outline": [],
            "text": "",
            "script": "",
            "chrome": [],
            "contents": [],
            "warnings": [],
            "markdown": markdown,
            "reasons": {},
            "doc": doc,
            "kind": "text",
            "summary": None,
        }
        return page(
            request,
            "import.html",
            user,
            422,
            result=kept,
            **_import_extras(),
            shown="{}",
            hints_json="{}",
            number="",
            error=_error(exc, "保存失败 / save failed"),
        )
    return back(f"/console/issues/{out['id']}", f"第{out['number']}期已保存 / saved")


def _when(issue_id: int, at: str) -> dt.datetime | None:
    """The time picked (a picker's local time is in the publication's zone); None: next slot."""
    if not at.strip():
        return None
    try:
        when = dt.datetime.fromisoformat(at.strip())
    except ValueError:
        from newsletter.core.catalogue import coded

        raise coded(svc.ConsoleError, "schedule.bad_time") from None
    if when.tzinfo is None:
        from zoneinfo import ZoneInfo

        when = when.replace(tzinfo=ZoneInfo(svc.load_issue_row(issue_id)["zone"]))
    return when


@router.get("/issues/{issue_id}", response_class=HTMLResponse)
def issue_page(request: Request, user: Viewer, issue_id: int, v: str = "zh-Hans") -> HTMLResponse:
    v = v if v in ("zh-Hans", "zh-Hant") else "zh-Hans"
    try:
        issue = svc.load_issue_row(issue_id)
    except NotFound:
        return _missing(request, user)
    try:
        outputs = svc.preview_outputs(issue_id, v)
        render_error = None
    except NewsletterError as exc:
        outputs, render_error = {"outputs": {}, "wechat": []}, _error(exc)
    return page(
        request,
        "issue.html",
        user,
        issue=issue,
        v=v,
        preview=outputs,
        render_error=render_error,
        lint=svc.lint(issue_id),
        lists=svc.lists(counts=False),
        segments=svc.segments(),
        sends=svc.list_sends(issue_id=issue_id),
        history=svc.issue_history(issue_id),
        pubs=svc.publications(),
    )


@router.post("/issues/{issue_id}/move")
def issue_move(
    request: Request, user: Editor, issue_id: int, publication: Annotated[str, Form()] = ""
) -> Response:
    """Move the issue to another publication (audited); one with sends cannot move."""
    from newsletter.core.catalogue import message

    return _done(
        lambda: svc.move_issue(user, issue_id, publication[:64]),
        f"/console/issues/{issue_id}",
        lambda out: message("publication.moved", number=out["number"], slug=out["slug"]).line(),
        missing=request,
    )


@router.get("/issues/{issue_id}/frame/{output}", response_class=HTMLResponse)
def issue_frame(user: Viewer, issue_id: int, output: str, v: str = "zh-Hans") -> HTMLResponse:
    allowed = output in ("email_html", "email_text", "web", "digest") or (
        output.startswith("wechat-") and output[7:].isdigit()
    )
    if not allowed:
        raise HTTPException(404)
    try:
        body = svc.frame_html(issue_id, output, v)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    # Rendered content runs in its own sandboxed origin: no script, no access to the console.
    return HTMLResponse(
        out_of_tab_order(body),
        headers={
            "Content-Security-Policy": "sandbox; default-src 'none'; img-src * data:; "
            "style-src 'unsafe-inline'; font-src * data:",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.post("/issues/{issue_id}/approve")
def issue_approve(request: Request, user: Editor, issue_id: int) -> Response:
    return _done(
        lambda: svc.approve_issue(user, issue_id, request),
        f"/console/issues/{issue_id}",
        "已审核通过 / approved",
    )


@router.post("/issues/{issue_id}/review")
def issue_review(request: Request, user: Editor, issue_id: int) -> Response:
    return _done(
        lambda: svc.submit_review(user, issue_id, request),
        f"/console/issues/{issue_id}",
        "已提交审核 / submitted for review",
    )


@router.post("/issues/{issue_id}/request-changes")
def issue_request_changes(
    request: Request, user: Editor, issue_id: int, note: Annotated[str, Form()] = ""
) -> Response:
    return _done(
        lambda: svc.request_changes(user, issue_id, note, request),
        f"/console/issues/{issue_id}",
        "已退回修改 / sent back for changes",
    )


@router.get("/issues/{issue_id}/diff", response_class=HTMLResponse)
def issue_diff(request: Request, user: Viewer, issue_id: int, a: int = 0, b: int = 0) -> Response:
    try:
        if not (a and b):
            versions = svc.issue_history(issue_id)["versions"]
            if len(versions) < 2:
                from newsletter.core.catalogue import message

                return back(f"/console/issues/{issue_id}", message("review.one_version").line())
            b, a = versions[0]["version"], versions[1]["version"]
        diff = svc.version_diff(issue_id, a, b)
    except NotFound:
        return _missing(request, user)
    return page(request, "diff.html", user, d=diff, issue_id=issue_id)


@router.post("/issues/{issue_id}/test-send")
def issue_test_send(
    request: Request,
    user: Ops,
    issue_id: int,
    to: Annotated[str, Form()] = "",
    variant: Annotated[str, Form()] = "zh-Hans",
) -> Response:
    try:
        res = svc.test_send(
            user, issue_id, to.replace("，", ",").replace(";", ",").split(","), variant, request
        )
    except (NewsletterError, OSError) as exc:
        return back(f"/console/issues/{issue_id}", _error(exc), "error")

    def said(state: str) -> str:
        return f"{DELIVERY_STATES[state]} / {state}" if state in DELIVERY_STATES else state

    text = "; ".join(f"{r['to']} ({r['variant']}): {said(r['state'])}" for r in res)
    ok = all(r["state"] == "sent" for r in res)
    return back(f"/console/issues/{issue_id}", "测试邮件 / test: " + text, "ok" if ok else "error")


@router.post("/issues/{issue_id}/sends")
def issue_create_send(
    request: Request,
    user: Ops,
    issue_id: int,
    list_id: Annotated[int, Form()],
    mode: Annotated[str, Form()] = "now",
    at: Annotated[str, Form()] = "",
    variant: Annotated[str, Form()] = "preference",
    segment_id: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    if mode in ("now", "schedule") and confirm != "yes":  # both ask first: who, how many, when
        try:
            facts = svc.send_now_facts(issue_id, list_id, segment_id, variant)
            facts["mode"], facts["at"] = mode, at.strip()
            if mode == "schedule":
                facts["when"] = svc.scheduled_time(issue_id, _when(issue_id, at))
        except NewsletterError as exc:
            return back(f"/console/issues/{issue_id}", _error(exc), "error")
        return page(request, "confirm_send.html", user, f=facts)
    try:
        when = _when(issue_id, at) if mode == "schedule" else None
        seg = int(segment_id) if segment_id.isdigit() else None
        out = svc.create_send(
            user,
            issue_id,
            list_id,
            variant_rule=variant,
            segment_id=seg,
            at=when,
            schedule=mode == "schedule",
            request=request,
        )
        if mode == "now":
            svc.control_send(user, out["id"], "start", request)
    except NewsletterError as exc:
        return back(f"/console/issues/{issue_id}", _error(exc), "error")
    return back(f"/console/sends/{out['id']}", f"发送任务 {out['id']} / send {out['id']}")
