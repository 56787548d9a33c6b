"""The JSON API of the audience: lists, subscribers, imports, jobs (imports and bulk
actions), segments and suppressions.  Refusals are ``{code, message, detail}`` like the
rest of ``/api`` (the same route class)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field

from newsletter.web.console import services as svc
from newsletter.web.console.api import ERRORS, Ops, Viewer, _refused, _Route

__all__ = ["router"]

router = APIRouter(prefix="/api", route_class=_Route)


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
    welcome: Annotated[bool, Form()] = False,
    must_exist: Annotated[bool, Form()] = False,
    new_list: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Store the file and queue its import as a job; poll GET /api/jobs/{id} for its rows.

    ``must_exist``: refuse a list that does not exist yet unless ``new_list`` is set (the
    console sends it, so a typed name never creates a list silently). ``welcome``: start the
    list's welcome series for the people the import adds."""
    return svc.start_import(
        user,
        list_name,
        file.filename or "upload.csv",
        file.file,
        resubscribe=resubscribe,
        welcome=welcome,
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
