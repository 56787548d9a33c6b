"""The JSON API of an admin's settings: the publication, the schedule, the WeChat check,
users and the audit log.  Refusals are ``{code, message, detail}`` like the rest of
``/api`` (the same route class)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from newsletter.web.console import services as svc
from newsletter.web.console.api import ERRORS, Admin, _Route

__all__ = ["router"]

router = APIRouter(prefix="/api", route_class=_Route)


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=320)
    password: str = Field(min_length=10, max_length=1000)
    role: Literal["admin", "ops", "marketing"]
    display_name: str = Field(default="", max_length=200)


class UserPatch(BaseModel):
    role: Literal["admin", "ops", "marketing"] | None = None
    active: bool | None = None


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
