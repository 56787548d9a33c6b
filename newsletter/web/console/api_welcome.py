"""The JSON API of a list's welcome series: every role reads it, an editor
(or ops, or an admin) changes it.  Refusals are ``{code, message, detail}`` like the rest
of ``/api`` (the same route class)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from newsletter.web.console import services as svc
from newsletter.web.console.api import ERRORS, Editor, Viewer, _Route

__all__ = ["router"]

router = APIRouter(prefix="/api", route_class=_Route)


class WelcomeStepIn(BaseModel):
    #: The step's source: the issue format (front matter with a title, then Markdown).
    source: str = Field(min_length=1, max_length=200_000)
    #: "立即", "2 天后", "3 小时后", "1 周后", "2d", "12h" or seconds.
    delay: str = Field(default="立即", max_length=40)


class WelcomeStepPatch(BaseModel):
    source: str | None = Field(default=None, min_length=1, max_length=200_000)
    delay: str | None = Field(default=None, max_length=40)


class WelcomeMoveIn(BaseModel):
    direction: Literal["up", "down"]


class WelcomeLintIn(BaseModel):
    source: str = Field(min_length=1, max_length=200_000)


@router.get("/lists/{list_id}/welcome", responses=ERRORS, tags=["welcome"])
def welcome_series(user: Viewer, list_id: int) -> dict[str, Any]:
    """The list's steps in order, each with its delay and figures."""
    return svc.welcome_series(list_id)


@router.post("/lists/{list_id}/welcome", responses=ERRORS, tags=["welcome"], status_code=201)
def add_welcome_step(
    request: Request, user: Editor, list_id: int, body: WelcomeStepIn
) -> dict[str, Any]:
    return svc.add_welcome_step(user, list_id, body.source, body.delay, request)


@router.post("/lists/{list_id}/welcome/lint", responses=ERRORS, tags=["welcome"])
def lint_welcome_step(user: Editor, list_id: int, body: WelcomeLintIn) -> dict[str, Any]:
    return {"messages": svc.lint_welcome_step(list_id, body.source)}


@router.get("/lists/{list_id}/welcome/{step_id}", responses=ERRORS, tags=["welcome"])
def welcome_step(user: Viewer, list_id: int, step_id: int) -> dict[str, Any]:
    return svc.welcome_step(list_id, step_id)


@router.patch("/lists/{list_id}/welcome/{step_id}", responses=ERRORS, tags=["welcome"])
def patch_welcome_step(
    request: Request, user: Editor, list_id: int, step_id: int, body: WelcomeStepPatch
) -> dict[str, Any]:
    return svc.update_welcome_step(
        user, list_id, step_id, source=body.source, delay=body.delay, request=request
    )


@router.post("/lists/{list_id}/welcome/{step_id}/move", responses=ERRORS, tags=["welcome"])
def move_welcome_step(
    request: Request, user: Editor, list_id: int, step_id: int, body: WelcomeMoveIn
) -> dict[str, Any]:
    return svc.move_welcome_step(user, list_id, step_id, body.direction, request)


@router.delete(
    "/lists/{list_id}/welcome/{step_id}", responses=ERRORS, tags=["welcome"], status_code=204
)
def delete_welcome_step(request: Request, user: Editor, list_id: int, step_id: int) -> Response:
    svc.delete_welcome_step(user, list_id, step_id, request)
    return Response(status_code=204)
