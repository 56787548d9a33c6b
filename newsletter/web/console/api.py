"""The JSON API under ``/api``: everything the console does, for scripts.

Authenticate with a personal token (``Authorization: Bearer nlt_…``, created
on the console's account page or with ``newsletter users token``) or with the
console's session cookie plus the ``X-CSRF-Token`` header.  A token has the
role of its owner.  The OpenAPI document is FastAPI's (``/openapi.json``,
``/docs``).

This module holds what every part of the API shares (the roles, the route class that
turns refusals into HTTP errors, their ``{code, message, detail}`` body) and the
account's own routes (``/me``, ``/tokens``); each domain's routes are a module of their
own, like ``pages/`` and ``services/``: :mod:`.api_issues`, :mod:`.api_sends`,
:mod:`.api_audience`, :mod:`.api_reports`, :mod:`.api_settings`, :mod:`.api_webhooks`
and :mod:`.api_welcome`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
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
    """A refusal with the catalogue code of its message (one catalogue)."""

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


class TokenIn(BaseModel):
    name: str = Field(default="api", max_length=200)
    days: int = Field(default=90, ge=1, le=365)
    #: A current two-factor code (or an unused recovery code): needed when the account
    #: has a second factor.
    otp: str = Field(default="", max_length=40)


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
