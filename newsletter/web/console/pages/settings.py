"""Settings (admin): the publications (create, each one's own settings), the weekly slot,
the WeChat check, and users."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import (
    HTMLResponse,
    Response,
)

from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError
from newsletter.web.console import services as svc
from newsletter.web.console import twofactor
from newsletter.web.console.auth import record
from newsletter.web.console.flash import back
from newsletter.web.console.pages.account import login_options
from newsletter.web.console.pages.common import (
    Admin,
    _done,
    _error,
    error_page,
    page,
)

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, user: Admin, pub: str = "") -> HTMLResponse:
    """Settings; ``?pub=slug`` shows that publication's own settings (default: the first)."""
    chosen = svc.publication(pub[:64] or None)
    if pub and chosen is None:
        return error_page(request, 404)
    return page(
        request,
        "settings.html",
        user,
        pub=chosen,
        pubs=svc.publications(),
        lists=svc.lists(),
        ident=svc.sender_identity(),
        users=svc.list_users(),
        two_factor_roles=_two_factor_roles(),
        **login_options(),
        wechat=getattr(request.state, "wechat", None),
    )


def _two_factor_roles() -> frozenset[str]:
    with session_scope() as s:
        return twofactor.required_roles(s)


@router.post("/settings/two-factor")
def settings_two_factor(
    request: Request, user: Admin, roles: Annotated[list[str] | None, Form()] = None
) -> Response:
    """Which roles' local accounts must use a second factor (this install)."""
    with session_scope() as s:
        chosen = twofactor.set_required_roles(s, roles or [], user.username)
        record(s, user, "settings.two_factor", "two_factor_roles", request, roles=chosen)
    return back("/console/settings#users", "已保存 / saved")


@router.post("/settings/publication")
def settings_publication(
    request: Request,
    user: Admin,
    name: Annotated[str, Form()] = "",
    from_name: Annotated[str, Form()] = "",
    from_address: Annotated[str, Form()] = "",
    reply_to: Annotated[str, Form()] = "",
    postal_address: Annotated[str, Form()] = "",
    track_opens: Annotated[str, Form()] = "",
    track_clicks: Annotated[str, Form()] = "",
    zh_hant_table: Annotated[str, Form()] = "",
    slug: Annotated[str, Form()] = "",
) -> Response:
    values = {
        "name": name,
        "from_name": from_name,
        "from_address": from_address,
        "reply_to": reply_to,
        "postal_address": postal_address,
        "track_opens": track_opens == "on",
        "track_clicks": track_clicks == "on",
        "zh_hant_table": zh_hant_table,
    }
    to = f"/console/settings?pub={quote(slug)}" if slug else "/console/settings"
    return _done(lambda: svc.update_publication(user, values, request, slug), to, "已保存 / saved")


@router.post("/publications")
def publication_create(
    request: Request,
    user: Admin,
    slug: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    """Create a publication: its own explicit step (an import never invents one)."""
    try:
        made = svc.create_publication(user, slug, name)
    except NewsletterError as exc:
        return back("/console/settings#publications", _error(exc), "error")
    return back(f"/console/settings?pub={quote(made)}", "已创建 / created")


@router.post("/settings/schedule")
def settings_schedule(
    request: Request,
    user: Admin,
    weekday: Annotated[int, Form()],
    time: Annotated[str, Form()],
    timezone: Annotated[str, Form()] = "Asia/Shanghai",
    default_list: Annotated[str, Form()] = "",
    slug: Annotated[str, Form()] = "",
) -> Response:
    return _done(
        lambda: svc.update_schedule(
            user, weekday, time, timezone, default_list, request, slug=slug or None
        ),
        f"/console/settings?pub={quote(slug)}" if slug else "/console/settings",
        "已保存 / saved",
    )


@router.post("/settings/wechat-check")
def settings_wechat(request: Request, user: Admin) -> Response:
    out = svc.wechat_check(user, request)
    msg = "公众号 / WeChat: " + (
        "ok " + json.dumps(out.get("mass_send_quota", {}))
        if out.get("ok")
        else str(out.get("message", "failed"))
    )
    return back("/console/settings", msg, "ok" if out.get("ok") else "error")


@router.post("/settings/users")
def settings_user_create(
    request: Request,
    user: Admin,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "marketing",
    display_name: Annotated[str, Form()] = "",
) -> Response:
    return _done(
        lambda: svc.create_user(user, username, password, role, display_name, request),
        "/console/settings#users",
        "用户已创建 / user created",
    )


@router.post("/settings/users/{user_id}")
def settings_user_update(
    request: Request,
    user: Admin,
    user_id: int,
    role: Annotated[str, Form()] = "",
    active: Annotated[str, Form()] = "",
) -> Response:
    return _done(
        lambda: svc.update_user(
            user,
            user_id,
            role=role or None,
            active=None if active == "" else active == "1",
            request=request,
        ),
        "/console/settings#users",
        "已保存 / saved",
    )
