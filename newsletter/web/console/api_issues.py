"""The JSON API of issues: list, upload, lint, preview, approve, test-send.  Refusals are
``{code, message, detail}`` like the rest of ``/api`` (the same route class)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from pydantic import BaseModel, Field

from newsletter.web.console import services as svc
from newsletter.web.console.api import ERRORS, Editor, Ops, Viewer, _refused, _Route

__all__ = ["router"]

router = APIRouter(prefix="/api", route_class=_Route)


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
