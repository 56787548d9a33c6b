"""Public endpoints: open pixel, click redirect, unsubscribe, web archive.

* ``GET /o/{token}.gif`` always answers the same 43-byte GIF with no-cache
  headers; only a valid token records an open.
* ``GET /c/{token}/{link_id}`` redirects (302) to the URL stored for that link
  of that issue, never to anything taken from the request.  A forged token
  still redirects (the reader wanted the link) but records nothing.
* ``/u/{token}``: ``POST`` is RFC 8058 one-click (200, no redirect, no
  cookies); ``GET`` only shows a confirmation page, because link scanners
  fetch every URL and must never unsubscribe anyone.
"""

from __future__ import annotations

import base64
import hashlib

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select

from newsletter.audience.service import unsubscribe
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import SealError, TokenError
from newsletter.core.ratelimit import hit
from newsletter.core.resources import resource_path
from newsletter.core.safety.safepath import media_dir
from newsletter.core.safety.signing import unverified, verify
from newsletter.core.safety.urlpolicy import safe_url
from newsletter.issues.archive import archive_key
from newsletter.issues.seal import read_blob, report_broken
from newsletter.issues.store import image_type, render_issue
from newsletter.models import (
    Delivery,
    Issue,
    Link,
    MailingList,
    Publication,
    Rendition,
    Send,
    Subscriber,
)
from newsletter.tracking.intake import make_event, submit

__all__ = ["PIXEL", "router"]

router = APIRouter()

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
_NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
_TEMPLATES = resource_path("templates", "public")
_env = Environment(loader=FileSystemLoader(str(_TEMPLATES)), autoescape=select_autoescape())

_TEXT = {
    "zh-Hans": {
        "confirm_title": "确认退订",
        "confirm_body": "确定不再接收《{pub}》吗？",
        "this_list": "仅退订此列表",
        "all": "退订全部邮件",
        "done_title": "已退订",
        "done_body": "您已退订，不会再收到此类邮件。",
        "bad_title": "链接无效",
        "bad_body": "此链接无效或已被修改。请使用邮件中的原始链接。",
        "prefs": "管理订阅偏好",
    },
    "zh-Hant": {
        "confirm_title": "確認退訂",
        "confirm_body": "確定不再接收《{pub}》嗎？",
        "this_list": "僅退訂此列表",
        "all": "退訂全部郵件",
        "done_title": "已退訂",
        "done_body": "您已退訂，不會再收到此類郵件。",
        "bad_title": "連結無效",
        "bad_body": "此連結無效或已被修改。請使用郵件中的原始連結。",
        "prefs": "管理訂閱偏好",
    },
}


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


@router.get("/o/{token}.gif", include_in_schema=False)
def open_pixel(token: str, request: Request) -> Response:
    ev = make_event(
        "open", token, user_agent=request.headers.get("user-agent", ""), ip=_client_ip(request)
    )
    if ev is not None:
        submit(ev)
    return Response(PIXEL, media_type="image/gif", headers=_NO_CACHE)


@router.get("/c/{token}/{link_id}", include_in_schema=False)
def click(token: str, link_id: int, request: Request) -> Response:
    named = unverified(token, "d")  # the target is a stored URL, so an unchecked id is safe
    did = named.fields[0] if named else None
    url = None
    if did is not None:
        with session_scope() as s:
            url = s.scalar(
                select(Link.url)
                .join(Send, Send.issue_id == Link.issue_id)
                .join(Delivery, Delivery.send_id == Send.id)
                .where(Delivery.id == did, Link.position == link_id)
            )
    if url is None:
        return PlainTextResponse("链接不存在 / link not found", status_code=404)
    target = safe_url(url, mailto=True)  # never follow a stored javascript:/data: URL
    if target is None:
        return PlainTextResponse(
            "链接地址不被允许 / link target not allowed", status_code=400, headers=_NO_CACHE
        )
    ev = make_event(
        "click",
        token,
        link=link_id,
        user_agent=request.headers.get("user-agent", ""),
        ip=_client_ip(request),
    )
    if ev is not None:
        submit(ev)
    return RedirectResponse(target, status_code=302, headers=_NO_CACHE)


def _page(name: str, variant: str, status: int = 200, **kw: object) -> HTMLResponse:
    text = _TEXT.get(variant, _TEXT["zh-Hans"])
    html = _env.get_template(name).render(t=text, variant=variant, **kw)
    return HTMLResponse(html, status_code=status, headers=_NO_CACHE)


def _lookup(token: str) -> tuple[int, int, str, str] | None:
    try:
        t = verify(token, "u")
    except TokenError:
        return None
    sid, lid = t.fields
    with session_scope() as s:
        sub = s.get(Subscriber, sid)
        if sub is None:
            return None
        ml = s.get(MailingList, lid) if lid else None
        return sid, lid, sub.variant, (ml.name if ml else "")


@router.get("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_page(token: str) -> HTMLResponse:
    found = _lookup(token)
    if found is None:
        return _page("message.html", "zh-Hans", 400, kind="bad")
    _sid, lid, variant, list_name = found
    return _page(
        "unsubscribe.html",
        variant,
        token=token,
        list_name=list_name,
        has_list=bool(lid),
        pub=list_name or get_settings().from_name,
    )


@router.post("/u/{token}", include_in_schema=False)
async def unsubscribe_post(token: str, request: Request) -> Response:
    found = _lookup(token)
    if found is None:
        return PlainTextResponse("invalid or altered token / 链接无效", status_code=400)
    sid, lid, variant, _name = found
    form = await request.form()
    one_click = form.get("List-Unsubscribe") == "One-Click"
    scope = form.get("scope", "list")
    with session_scope() as s:
        if one_click or scope == "list":
            unsubscribe(s, sid, lid or None, reason="one-click" if one_click else "web")
        else:
            unsubscribe(s, sid, None, reason="web-all")
    if one_click:
        # RFC 8058: plain 200, no redirect, no cookie.
        return PlainTextResponse("unsubscribed", status_code=200)
    return _page("message.html", variant, kind="done")


#: Issue states whose archive page is public; anything earlier is for console users only.
PUBLIC_STATES = ("approved", "scheduled", "sent")


@router.get("/archive/{slug}/{number}", response_class=HTMLResponse)
def archive(slug: str, number: int, request: Request, v: str = "zh-Hans") -> HTMLResponse:
    variant = "zh-Hant" if v == "zh-Hant" else "zh-Hans"
    from newsletter.web.console.auth import authenticate

    if not 0 < number < 2**31:
        return HTMLResponse("<h1>404</h1><p>本期不存在 / issue not found</p>", status_code=404)
    with session_scope() as s:
        found = s.execute(
            select(Issue.id, Issue.status, Issue.sealed_version)
            .join(Publication, Publication.id == Issue.publication_id)
            .where(Publication.slug == slug, Issue.number == number)
        ).first()
    status = found.status if found is not None else None
    if found is None or (status not in PUBLIC_STATES and authenticate(request) is None):
        # A draft or an issue in review exists only for console users: same 404 as nothing.
        return HTMLResponse("<h1>404</h1><p>本期不存在 / issue not found</p>", status_code=404)
    if found.sealed_version is not None:
        # The page of the sealed version: its seal verified, rendered from it (once).
        try:
            with session_scope() as s:
                render_issue(s, found.id)
        except SealError as exc:
            report_broken(exc)
            return HTMLResponse(
                "<h1>404</h1><p>本期暂不可用 / issue not available</p>", status_code=404
            )
    with session_scope() as s:
        body = s.scalar(
            select(Rendition.body)
            .join(Issue, Issue.id == Rendition.issue_id)
            .join(Publication, Publication.id == Issue.publication_id)
            .where(
                Publication.slug == slug,
                Issue.number == number,
                Rendition.variant == variant,
                Rendition.output == "web",
            )
        )
        if body is not None:
            # The archive's view counter: one fixed-window row per issue and day.
            hit(s, archive_key(slug, number), window_seconds=86400, limit=1 << 62)
    if body is None:
        return HTMLResponse("<h1>404</h1><p>本期不存在 / issue not found</p>", status_code=404)
    return HTMLResponse(body)


@router.get("/media/{sha256}", include_in_schema=False)
def media(sha256: str) -> Response:
    """Images of issues, by content hash (immutable, cacheable forever).

    Serves the bytes sealed with an approved issue (the blob store,
    :func:`~newsletter.issues.seal.read_blob`) or what
    :func:`~newsletter.issues.store.store_media` registered for drafts: a regular
    file (not a symlink) named by the SHA-256 of its bytes, whose bytes are an
    image.  Anything else is a 404: an e-mail or archive page shows the approved
    picture or none.
    """
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        return PlainTextResponse("not found", status_code=404)
    data = read_blob(sha256)
    if data is None:
        path = media_dir() / sha256
        try:
            if path.is_symlink() or not path.is_file():
                return PlainTextResponse("not found", status_code=404)
            data = path.read_bytes()
        except OSError:
            return PlainTextResponse("not found", status_code=404)
    kind = image_type(data)
    if kind is None or hashlib.sha256(data).hexdigest() != sha256:
        return PlainTextResponse("not found", status_code=404)
    return Response(
        data,
        media_type=kind,
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}
