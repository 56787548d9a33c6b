"""The JSON API under ``/api``: everything the console does, for scripts.

Authenticate with a personal token (``Authorization: Bearer nlt_…``, created
on the console's account page or with ``newsletter users token``) or with the
console's session cookie plus the ``X-CSRF-Token`` header.  A token has the
role of its owner.  The OpenAPI document is FastAPI's (``/openapi.json``,
``/docs``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from newsletter.core.errors import NewsletterError, NotFound, ServiceUnavailable, StateError
from newsletter.web.console import services as svc
from newsletter.web.console.auth import Principal, need

__all__ = ["router"]


Viewer = Annotated[Principal, Depends(need("marketing"))]
Editor = Annotated[Principal, Depends(need("editor"))]
Ops = Annotated[Principal, Depends(need("ops"))]
Admin = Annotated[Principal, Depends(need("admin"))]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not authenticated"},
    403: {"description": "role too low, or CSRF token missing (session auth)"},
}


class Refused(HTTPException):
    """A refusal with the catalogue code of its message (issue 31: one catalogue)."""

    def __init__(self, status: int, exc: Exception, code: str) -> None:
        super().__init__(status, str(exc))
        self.code = getattr(exc, "code", None) or code
        self.msg = getattr(exc, "msg", None)


def _fail(exc: Exception) -> HTTPException:
    if isinstance(exc, svc.FreshCodeNeeded):
        return Refused(403, exc, "error.state")
    if isinstance(exc, NotFound):
        return Refused(404, exc, "error.not_found")
    if isinstance(exc, StateError):
        return Refused(409, exc, "error.state")
    if isinstance(exc, ServiceUnavailable):
        return Refused(503, exc, "error.unavailable")
    return Refused(422, exc, "error.invalid")


def refusal_body(exc: Refused, lang: str) -> dict[str, Any]:
    """``{code, message, detail}``: the message in the request's language (a coded message
    from the catalogue; otherwise the refusal's own line), ``detail`` the full line."""
    if exc.msg is not None:
        text = exc.msg.text("en" if lang == "en" else "zh")
    else:
        text = str(exc.detail)
    if lang == "zh-Hant":
        from newsletter.content.variants import convert_text

        text = convert_text(text)
    return {"code": exc.code, "message": text, "detail": exc.detail}


class _Route(APIRoute):
    """Every handler's refusals (:class:`NewsletterError`) become HTTP errors here, once.

    404 not found, 409 wrong state, 503 a service down, 422 anything else; the
    handlers themselves only call the service function and shape the answer.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def translated(request: Request) -> Response:
            try:
                return await handler(request)
            except NewsletterError as exc:
                raise _fail(exc) from exc

        return translated


@contextmanager
def _refused(*kinds: type[Exception]) -> Iterator[None]:
    """Also answer these exceptions (beyond NewsletterError) as a refusal of the request."""
    try:
        yield
    except kinds as exc:
        raise _fail(exc) from exc


router = APIRouter(prefix="/api", route_class=_Route)


class Me(BaseModel):
    username: str
    display_name: str
    role: str
    via: str


class IssueOut(BaseModel):
    id: int
    number: int
    title: str
    period: str
    status: str
    approved_by: str | None = None
    approved_at: str | None = None
    updated_at: str | None = None


class TestSendIn(BaseModel):
    to: list[str] = Field(min_length=1, max_length=10)
    variant: Literal["zh-Hans", "zh-Hant", "both"] = "zh-Hans"


class SendIn(BaseModel):
    issue_id: int
    list_id: int
    variant: Literal["preference", "zh-Hans", "zh-Hant"] = "preference"
    segment_id: int | None = None
    #: "now" creates a draft send (start it with POST /api/sends/{id}/start); "schedule" uses `at`
    #: or the publication's next weekly slot.
    mode: Literal["now", "schedule"] = "now"
    at: dt.datetime | None = None
    start: bool = False


class BulkJobIn(BaseModel):
    action: Literal["unsubscribe", "move", "block", "delete"]
    #: The search (address prefix, or a name with Chinese characters) and/or its list,
    #: or a saved segment (optionally within ``list_id``).
    q: str = Field("", max_length=200)
    list_id: int | None = None
    segment_id: int | None = None
    to_list: int | None = None


class SegmentCountIn(BaseModel):
    definition: dict[str, Any] | None = None
    list_id: int | None = None


class SegmentIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    definition: dict[str, Any]


class SuppressionIn(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    note: str = Field(default="", max_length=1000)


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=320)
    password: str = Field(min_length=10, max_length=1000)
    role: Literal["admin", "ops", "marketing"]
    display_name: str = Field(default="", max_length=200)


class UserPatch(BaseModel):
    role: Literal["admin", "ops", "marketing"] | None = None
    active: bool | None = None


class TokenIn(BaseModel):
    name: str = Field(default="api", max_length=200)
    days: int = Field(default=90, ge=1, le=365)
    #: A current two-factor code (or an unused recovery code): needed when the account
    #: has a second factor.
    otp: str = Field(default="", max_length=40)


class PublicationPatch(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    from_name: str | None = Field(default=None, max_length=200)
    from_address: str | None = Field(default=None, max_length=320)
    reply_to: str | None = Field(default=None, max_length=320)
    postal_address: str | None = Field(default=None, max_length=500)
    track_opens: bool | None = None
    track_clicks: bool | None = None


class ScheduleIn(BaseModel):
    weekday: int = Field(ge=1, le=7)
    time: str = Field(pattern=r"^\d{1,2}:\d{2}$")
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    default_list: str | None = Field(default=None, max_length=200)


# -- who am I --------------------------------------------------------------------


@router.get("/me", response_model=Me, responses=ERRORS, tags=["account"])
def me(user: Viewer) -> Me:
    return Me(username=user.username, display_name=user.display_name, role=user.role, via=user.via)


@router.get("/tokens", responses=ERRORS, tags=["account"])
def my_tokens(user: Viewer) -> list[dict[str, Any]]:
    return svc.tokens(user.user_id)


@router.post("/tokens", responses=ERRORS, tags=["account"], status_code=201)
def create_my_token(request: Request, user: Viewer, body: TokenIn) -> dict[str, Any]:
    return svc.create_token(user, user.user_id, body.name, body.days, request, otp=body.otp)


@router.delete("/tokens/{token_id}", responses=ERRORS, tags=["account"], status_code=204)
def revoke_my_token(request: Request, user: Viewer, token_id: int) -> Response:
    svc.revoke_token(user, token_id, request)
    return Response(status_code=204)


# -- issues ----------------------------------------------------------------------


@router.get("/issues", response_model=list[IssueOut], responses=ERRORS, tags=["issues"])
def issues(user: Viewer, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    return svc.list_issues(max(1, min(limit, 500)), max(0, offset))


@router.post("/issues", responses=ERRORS, tags=["issues"], status_code=201)
async def upload_issue(
    request: Request,
    user: Editor,
    file: Annotated[UploadFile, File()],
    images: Annotated[list[UploadFile] | None, File()] = None,
) -> dict[str, Any]:
    data = await file.read()
    imgs = [(im.filename or "", await im.read()) for im in images or [] if im.filename]
    return svc.upload_issue(user, file.filename or "issue.md", data, imgs, request)


@router.get("/issues/{issue_id}", response_model=IssueOut, responses=ERRORS, tags=["issues"])
def issue(user: Viewer, issue_id: int) -> dict[str, Any]:
    return svc.load_issue_row(issue_id)


@router.get("/issues/{issue_id}/lint", responses=ERRORS, tags=["issues"])
def issue_lint(user: Viewer, issue_id: int) -> dict[str, Any]:
    return svc.lint(issue_id)


@router.get("/issues/{issue_id}/preview", responses=ERRORS, tags=["issues"])
def issue_preview(
    user: Viewer, issue_id: int, variant: Literal["zh-Hans", "zh-Hant"] = "zh-Hans"
) -> dict[str, Any]:
    """Sizes of each rendered output; the HTML itself is at /console/issues/{id}/frame/{output}."""
    return svc.preview_outputs(issue_id, variant)


@router.post(
    "/issues/{issue_id}/approve", response_model=IssueOut, responses=ERRORS, tags=["issues"]
)
def approve(request: Request, user: Editor, issue_id: int) -> dict[str, Any]:
    return svc.approve_issue(user, issue_id, request)


@router.post("/issues/{issue_id}/test-send", responses=ERRORS, tags=["issues"])
def test_send(request: Request, user: Ops, issue_id: int, body: TestSendIn) -> list[dict[str, Any]]:
    try:
        with _refused(ValueError):
            return svc.test_send(user, issue_id, body.to, body.variant, request)
    except OSError as exc:
        raise HTTPException(502, f"SMTP: {exc}") from exc


# -- sends -----------------------------------------------------------------------


@router.get("/sends", responses=ERRORS, tags=["sends"])
def sends(user: Viewer, limit: int = 100) -> list[dict[str, Any]]:
    return svc.list_sends(max(1, min(limit, 500)))


@router.post("/sends", responses=ERRORS, tags=["sends"], status_code=201)
def create_send(request: Request, user: Ops, body: SendIn) -> dict[str, Any]:
    out = svc.create_send(
        user,
        body.issue_id,
        body.list_id,
        variant_rule=body.variant,
        segment_id=body.segment_id,
        at=body.at,
        schedule=body.mode == "schedule",
        request=request,
    )
    if body.start and body.mode == "now":
        return svc.control_send(user, out["id"], "start", request)
    return out


@router.get("/sends/{send_id}", responses=ERRORS, tags=["sends"])
def send_progress(user: Viewer, send_id: int) -> dict[str, Any]:
    """State, delivery counts, percent done, rate, remaining and the WeChat channel's state."""
    return svc.progress(send_id)


@router.post("/sends/{send_id}/{action}", responses=ERRORS, tags=["sends"])
def send_control(
    request: Request,
    user: Ops,
    send_id: int,
    action: Literal["start", "pause", "resume", "cancel"],
) -> dict[str, Any]:
    return svc.control_send(user, send_id, action, request)


# -- subscribers -----------------------------------------------------------------


@router.get("/lists", responses=ERRORS, tags=["subscribers"])
def lists(user: Viewer) -> list[dict[str, Any]]:
    return svc.lists()


@router.get("/lists/{list_id}/export.csv", responses=ERRORS, tags=["subscribers"])
def export_list(request: Request, user: Ops, list_id: int) -> StreamingResponse:
    body = svc.export_list(user, list_id, request)
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="list-{list_id}.csv"'},
    )


@router.get("/subscribers", responses=ERRORS, tags=["subscribers"])
def subscribers(
    user: Ops, q: str = "", list_id: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    return svc.search_subscribers(q[:320], list_id, limit)


@router.post("/imports", responses=ERRORS, tags=["subscribers"], status_code=202)
def start_import(
    request: Request,
    user: Ops,
    file: Annotated[UploadFile, File()],
    list_name: Annotated[str, Form(max_length=200)],
    resubscribe: Annotated[bool, Form()] = False,
    must_exist: Annotated[bool, Form()] = False,
    new_list: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Store the file and queue its import as a job; poll GET /api/jobs/{id} for its rows.

    ``must_exist``: refuse a list that does not exist yet unless ``new_list`` is set (the
    console sends it, so a typed name never creates a list silently)."""
    return svc.start_import(
        user,
        list_name,
        file.filename or "upload.csv",
        file.file,
        resubscribe=resubscribe,
        request=request,
        must_exist=must_exist and not new_list,
    )


@router.get("/imports/{job_id}", responses=ERRORS, tags=["subscribers"])
def import_state(user: Ops, job_id: int) -> dict[str, Any]:
    return svc.get_job(job_id)


@router.get("/imports/{job_id}/errors.csv", responses=ERRORS, tags=["subscribers"])
def import_errors(user: Ops, job_id: int) -> FileResponse:
    return FileResponse(
        svc.import_report(job_id),
        media_type="text/csv; charset=utf-8",
        filename=f"import-{job_id}-errors.csv",
    )


@router.get("/jobs", responses=ERRORS, tags=["jobs"])
def jobs(user: Ops, limit: int = 50) -> list[dict[str, Any]]:
    """Recent imports and bulk actions, newest first."""
    return svc.list_jobs(limit)


@router.get("/jobs/{job_id}", responses=ERRORS, tags=["jobs"])
def job_state(user: Ops, job_id: int) -> dict[str, Any]:
    """State, rows done of total, percent, result or error of one job."""
    return svc.get_job(job_id)


@router.post("/jobs/bulk", responses=ERRORS, tags=["jobs"], status_code=202)
def start_bulk(request: Request, user: Ops, body: BulkJobIn) -> dict[str, Any]:
    """Queue a bulk action over every subscriber of a search or of a segment."""
    return svc.start_bulk_job(
        user,
        body.action,
        q=body.q,
        list_id=body.list_id,
        segment_id=body.segment_id,
        to_list=body.to_list,
        request=request,
    )


@router.post("/jobs/{job_id}/resume", responses=ERRORS, tags=["jobs"], status_code=202)
def resume_job(request: Request, user: Ops, job_id: int) -> dict[str, Any]:
    """Queue an interrupted or failed job again."""
    return svc.resume_job(user, job_id, request)


@router.get("/segments", responses=ERRORS, tags=["subscribers"])
def segments(user: Viewer) -> list[dict[str, Any]]:
    return svc.segments()


@router.post("/segments", responses=ERRORS, tags=["subscribers"], status_code=201)
def save_segment(request: Request, user: Ops, body: SegmentIn) -> dict[str, Any]:
    return svc.save_segment(user, body.name, body.definition, request)


@router.post("/segments/count", responses=ERRORS, tags=["subscribers"])
def count_segment(user: Ops, body: SegmentCountIn) -> dict[str, int]:
    """How many active subscribers match a definition (not saved), optionally within a list."""
    return {"count": svc.count_segment(body.definition, body.list_id)}


@router.get("/suppressions", responses=ERRORS, tags=["subscribers"])
def suppressions(user: Ops, q: str = "", limit: int = 100) -> list[dict[str, Any]]:
    return svc.suppressions(q[:320], limit)


@router.post("/suppressions", responses=ERRORS, tags=["subscribers"], status_code=201)
def add_suppression(request: Request, user: Ops, body: SuppressionIn) -> dict[str, bool]:
    with _refused(ValueError):
        return {"added": svc.add_suppression(user, body.email, body.note, request)}


@router.delete("/suppressions/{email}", responses=ERRORS, tags=["subscribers"])
def remove_suppression(request: Request, user: Ops, email: str) -> dict[str, bool]:
    with _refused(ValueError):
        return {"removed": svc.remove_suppression(user, email, request)}


# -- stats -----------------------------------------------------------------------


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


# -- settings (admin) ------------------------------------------------------------


@router.get("/settings", responses=ERRORS, tags=["settings"])
def settings(user: Admin) -> dict[str, Any]:
    return {"publication": svc.publication(), "sender": svc.sender_identity()}


@router.patch("/settings/publication", responses=ERRORS, tags=["settings"])
def patch_publication(request: Request, user: Admin, body: PublicationPatch) -> dict[str, Any]:
    return svc.update_publication(user, body.model_dump(), request)


@router.put("/settings/schedule", responses=ERRORS, tags=["settings"])
def put_schedule(request: Request, user: Admin, body: ScheduleIn) -> dict[str, Any]:
    return svc.update_schedule(
        user, body.weekday, body.time, body.timezone, body.default_list, request
    )


@router.post("/settings/wechat-check", responses=ERRORS, tags=["settings"])
def wechat_check(request: Request, user: Admin) -> dict[str, Any]:
    return svc.wechat_check(user, request)


@router.get("/users", responses=ERRORS, tags=["settings"])
def users(user: Admin) -> list[dict[str, Any]]:
    return svc.list_users()


@router.post("/users", responses=ERRORS, tags=["settings"], status_code=201)
def create_user(request: Request, user: Admin, body: UserIn) -> dict[str, Any]:
    return svc.create_user(
        user, body.username, body.password, body.role, body.display_name, request
    )


@router.patch("/users/{user_id}", responses=ERRORS, tags=["settings"])
def patch_user(request: Request, user: Admin, user_id: int, body: UserPatch) -> dict[str, Any]:
    return svc.update_user(user, user_id, role=body.role, active=body.active, request=request)


@router.get("/audit", responses=ERRORS, tags=["settings"])
def audit(user: Admin, limit: int = 100) -> list[dict[str, Any]]:
    return svc.audit_entries(max(1, min(limit, 1000)))


# -- event webhooks (admin) ------------------------------------------------------------


class WebhookIn(BaseModel):
    url: str = Field(max_length=2000)
    events: list[str] = Field(min_length=1, max_length=20)
    description: str = Field(default="", max_length=200)
    #: ``whsec_`` + base64 of at least 24 bytes; empty: one is made (and returned once)
    secret: str = Field(default="", max_length=200)


class WebhookPatch(BaseModel):
    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=20)
    active: bool | None = None
    description: str | None = Field(default=None, max_length=200)


@router.get("/webhooks", responses=ERRORS, tags=["webhooks"])
def webhooks(user: Admin) -> list[dict[str, Any]]:
    return svc.webhooks()


@router.post("/webhooks", responses=ERRORS, tags=["webhooks"], status_code=201)
def create_webhook(request: Request, user: Admin, body: WebhookIn) -> dict[str, Any]:
    return svc.create_webhook(user, body.url, body.events, body.description, body.secret, request)


@router.get("/webhooks/{endpoint_id}", responses=ERRORS, tags=["webhooks"])
def webhook(user: Admin, endpoint_id: int) -> dict[str, Any]:
    return svc.webhook(endpoint_id)


@router.patch("/webhooks/{endpoint_id}", responses=ERRORS, tags=["webhooks"])
def patch_webhook(
    request: Request, user: Admin, endpoint_id: int, body: WebhookPatch
) -> dict[str, Any]:
    return svc.update_webhook(
        user,
        endpoint_id,
        url=body.url,
        events=body.events,
        active=body.active,
        description=body.description,
        request=request,
    )


@router.delete("/webhooks/{endpoint_id}", responses=ERRORS, tags=["webhooks"], status_code=204)
def delete_webhook(request: Request, user: Admin, endpoint_id: int) -> Response:
    svc.delete_webhook(user, endpoint_id, request)
    return Response(status_code=204)


@router.get("/webhooks/{endpoint_id}/attempts", responses=ERRORS, tags=["webhooks"])
def webhook_attempts(user: Admin, endpoint_id: int, limit: int = 100) -> list[dict[str, Any]]:
    return svc.webhook_attempts(endpoint_id, max(1, min(limit, 1000)))
