"""Subscriber-facing pages: subscribe (double opt-in), confirm, preferences, data, erasure.

Every page is available in Simplified and Traditional Chinese (the
subscriber's preference, or ``?v=zh-Hant`` on public forms), sets no cookie,
and changes state only on POST.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from starlette.background import BackgroundTask

from newsletter.audience.addresses import AddressError
from newsletter.audience.optin import clean_src, confirm, form_stamp, request_subscription
from newsletter.audience.service import erase_subscriber, export_personal_data, set_preferences
from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound, TokenError
from newsletter.core.safety.signing import verify, verify_confirm
from newsletter.models import MailingList, Publication, Subscriber, Subscription
from newsletter.web.public import _NO_CACHE, _client_ip, _env

__all__ = ["router"]

router = APIRouter()

T = {
    "zh-Hans": {
        "subscribe": "订阅",
        "email": "邮箱",
        "name": "称呼（可选）",
        "variant": "版本",
        "hans": "简体中文",
        "hant": "繁體中文",
        "submit": "订阅",
        "check": "请查收邮件",
        "check_body": "如果该邮箱可以订阅，我们已发送一封确认邮件。请点击邮件中的链接完成订阅。",
        "bad_email": "邮箱地址无效",
        "slow": "请求过于频繁，请稍后再试。",
        "confirm": "确认订阅",
        "confirm_body": "点击下面的按钮确认订阅《{list}》。",
        "confirmed": "订阅成功",
        "confirmed_body": "感谢订阅！您将按期收到《{list}》。",
        "invalid": "链接无效或已过期",
        "invalid_body": "请重新提交订阅申请。",
        "prefs": "订阅偏好",
        "lists": "订阅的列表",
        "save": "保存",
        "saved": "已保存",
        "mydata": "下载我的数据",
        "erase": "删除我的全部数据",
        "erase_note": "删除后我们只保留该邮箱的不可逆摘要，以确保不再向其发送邮件。此操作无法撤销。",
        "erased": "数据已删除",
        "erased_body": "您的个人数据已删除，我们不会再向您发送邮件。",
        "really": "确认删除",
    },
    "zh-Hant": {
        "subscribe": "訂閱",
        "email": "郵箱",
        "name": "稱呼（選填）",
        "variant": "版本",
        "hans": "简体中文",
        "hant": "繁體中文",
        "submit": "訂閱",
        "check": "請查收郵件",
        "check_body": "如果該郵箱可以訂閱，我們已寄出一封確認郵件。請點擊郵件中的連結完成訂閱。",
        "bad_email": "郵箱地址無效",
        "slow": "請求過於頻繁，請稍後再試。",
        "confirm": "確認訂閱",
        "confirm_body": "點擊下面的按鈕確認訂閱《{list}》。",
        "confirmed": "訂閱成功",
        "confirmed_body": "感謝訂閱！您將按期收到《{list}》。",
        "invalid": "連結無效或已過期",
        "invalid_body": "請重新提交訂閱申請。",
        "prefs": "訂閱偏好",
        "lists": "訂閱的列表",
        "save": "儲存",
        "saved": "已儲存",
        "mydata": "下載我的資料",
        "erase": "刪除我的全部資料",
        "erase_note": "刪除後我們只保留該郵箱的不可逆摘要，以確保不再向其寄送郵件。此操作無法撤銷。",
        "erased": "資料已刪除",
        "erased_body": "您的個人資料已刪除，我們不會再向您寄送郵件。",
        "really": "確認刪除",
    },
}


def _v(value: str | None) -> str:
    return "zh-Hant" if value == "zh-Hant" else "zh-Hans"


def _render(name: str, variant: str, status: int = 200, **kw: object) -> HTMLResponse:
    html = _env.get_template(name).render(t=T[variant], variant=variant, **kw)
    return HTMLResponse(html, status_code=status, headers=_NO_CACHE)


def _list(ref: int | str) -> MailingList:
    """A list by id, or a publication's default list by the publication's slug."""
    with session_scope() as s:
        ml: MailingList | None = None
        if isinstance(ref, int) or (ref.isascii() and ref.isdigit() and len(ref) < 10):
            ml = s.get(MailingList, int(ref))
        elif len(ref) <= 64:
            list_id = s.scalar(select(Publication.default_list_id).where(Publication.slug == ref))
            ml = s.get(MailingList, list_id) if list_id is not None else None
        if ml is None:
            raise NotFound("list")
        return ml


def _src(value: object) -> str:
    return clean_src(value)


@router.get("/subscribe/{list_id}", response_class=HTMLResponse)
def subscribe_form(list_id: str, v: str | None = None, src: str | None = None) -> HTMLResponse:
    """The form, by list id or by publication slug (its default list); ``?src=wechat``
    (where the reader came from) is carried into the sign-up's source."""
    try:
        ml = _list(list_id)
    except NotFound:
        return HTMLResponse("<h1>404</h1>", status_code=404)
    return _render("subscribe.html", _v(v), list=ml, stamp=form_stamp(), error=None, src=_src(src))


def embed_headers() -> dict[str, str]:
    """Headers of the embeddable form: framing allowed only for ``embed_origins``
    (none by default: then only this site may frame it)."""
    from newsletter.core.config import get_settings
    from newsletter.web.guard import CSP

    origins = " ".join(get_settings().embed_origins)
    csp = CSP.replace("frame-ancestors 'self'", f"frame-ancestors 'self' {origins}".rstrip())
    return {**_NO_CACHE, "Content-Security-Policy": csp}


@router.get("/subscribe/{list_id}/embed", response_class=HTMLResponse)
def subscribe_embed(list_id: str, v: str | None = None, src: str | None = None) -> HTMLResponse:
    """The form alone, for an ``<iframe>`` on another site (see ``embed_origins``)."""
    try:
        ml = _list(list_id)
    except NotFound:
        return HTMLResponse("<h1>404</h1>", status_code=404)
    page = _render(
        "subscribe.html",
        _v(v),
        list=ml,
        stamp=form_stamp(),
        error=None,
        src=_src(src or "embed"),
        embed=True,
    )
    page.headers.update(embed_headers())
    return page


def _qr_target(list_id: str, v: str | None) -> str | None:
    from newsletter.core.config import get_settings

    try:
        ml = _list(list_id)
    except NotFound:
        return None
    url = f"{get_settings().base_url.rstrip('/')}/subscribe/{ml.id}?src=qr"
    return url + ("&v=zh-Hant" if _v(v) == "zh-Hant" else "")


@router.get("/subscribe/{list_id}/qr.{kind}")
def subscribe_qr(list_id: str, kind: str, v: str | None = None) -> Response:
    """A QR code that leads to the form: ``qr.svg`` for print, ``qr.png`` for images."""
    from newsletter.render.qr import qr_png, qr_svg

    url = _qr_target(list_id, v)
    if url is None or kind not in ("svg", "png"):
        return HTMLResponse("<h1>404</h1>", status_code=404)
    body, media = (qr_svg(url), "image/svg+xml") if kind == "svg" else (qr_png(url), "image/png")
    return Response(body, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


@router.post("/subscribe/{list_id}", response_class=HTMLResponse)
async def subscribe_submit(list_id: str, request: Request) -> HTMLResponse:
    form = await request.form()
    if form.get("embed") == "1":  # the embedded form's answers stay frameable
        page = await _subscribe_submit(list_id, request, form)
        page.headers.update(embed_headers())
        return page
    return await _subscribe_submit(list_id, request, form)


async def _subscribe_submit(list_id: str, request: Request, form: Any) -> HTMLResponse:
    embed = form.get("embed") == "1"
    variant = _v(str(form.get("variant", "")) or request.query_params.get("v"))
    src = _src(form.get("src") or request.query_params.get("src"))
    try:
        ml = _list(list_id)
    except NotFound:
        return HTMLResponse("<h1>404</h1>", status_code=404)
    try:
        result = request_subscription(
            str(form.get("email", "")),
            ml.id,
            name=str(form.get("name", "")),
            variant=variant,
            ip=_client_ip(request),
            stamp=str(form.get("stamp", "")),
            honeypot=str(form.get("website", "")),
            src=src,
        )
    except AddressError as exc:
        return _render(
            "subscribe.html",
            variant,
            422,
            list=ml,
            stamp=form_stamp(),
            error=f"{T[variant]['bad_email']}: {exc}",
            src=src,
            embed=embed,
        )
    if result.outcome == "throttled" and result.detail == "ip":
        return _render("info.html", variant, 429, title=T[variant]["slow"], body="")
    # Same answer whatever happened: never reveal whether an address is subscribed.  The
    # confirmation mail goes after the answer (a background task), so timing tells nothing.
    page = _render(
        "info.html", variant, 200, title=T[variant]["check"], body=T[variant]["check_body"]
    )
    if result.mail is not None:
        page.background = BackgroundTask(_send_quietly, *result.mail)
    return page


def _send_quietly(addr: str, list_name: str, token: str, variant: str) -> None:
    import logging

    from newsletter.delivery.system_mail import send_confirmation

    try:
        send_confirmation(addr, list_name, token, variant)
    except Exception:  # the page is already answered; the log says what failed
        logging.getLogger(__name__).exception("opt-in confirmation to %s failed", addr)


def _confirm_target(check: Any, token: str) -> tuple[MailingList, str] | None:
    """(list, subscriber's variant) for a confirmation token passed through ``check``."""
    try:
        sid, list_id = check(token)
        ml = _list(list_id)
        with session_scope() as s:
            sub = s.get(Subscriber, sid)
            return ml, sub.variant if sub else "zh-Hans"
    except (TokenError, NotFound):
        return None


def _invalid_link() -> HTMLResponse:
    return _render(
        "info.html",
        "zh-Hans",
        400,
        title=T["zh-Hans"]["invalid"],
        body=T["zh-Hans"]["invalid_body"],
    )


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(token: str) -> HTMLResponse:
    found = _confirm_target(verify_confirm, token)  # only checks: a GET never confirms
    if found is None:
        return _invalid_link()
    ml, variant = found
    return _render("confirm.html", variant, token=token, list=ml)


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm_submit(token: str) -> HTMLResponse:
    found = _confirm_target(confirm, token)
    if found is None:
        return _invalid_link()
    ml, variant = found
    return _render(
        "info.html",
        variant,
        title=T[variant]["confirmed"],
        body=T[variant]["confirmed_body"].format(list=ml.name),
    )


def _prefs_subject(token: str) -> tuple[int, str] | None:
    try:
        sid = verify(token, "u").fields[0]
    except TokenError:
        return None
    with session_scope() as s:
        sub = s.get(Subscriber, sid)
        if sub is None or sub.status != "active":
            return None
        return sid, sub.variant


def _bad() -> HTMLResponse:
    return _render("info.html", "zh-Hans", 400, title=T["zh-Hans"]["invalid"], body="")


@router.get("/p/{token}", response_class=HTMLResponse)
def preferences(token: str, saved: bool = False) -> HTMLResponse:
    found = _prefs_subject(token)
    if found is None:
        return _bad()
    sid, variant = found
    with session_scope() as s:
        sub = s.get(Subscriber, sid)
        rows = s.execute(
            select(MailingList.id, MailingList.name, Subscription.status)
            .join(Subscription, Subscription.list_id == MailingList.id)
            .where(Subscription.subscriber_id == sid)
            .order_by(MailingList.name)
        ).all()
        email = sub.email if sub else ""
    return _render("preferences.html", variant, token=token, email=email, lists=rows, saved=saved)


@router.post("/p/{token}", response_class=HTMLResponse)
async def preferences_save(token: str, request: Request) -> Response:
    found = _prefs_subject(token)
    if found is None:
        return _bad()
    sid, _variant = found
    form = await request.form()
    chosen = {int(str(x)) for x in form.getlist("list") if str(x).isdigit()}
    with session_scope() as s:
        offered = [
            lid
            for (lid,) in s.execute(
                select(Subscription.list_id).where(Subscription.subscriber_id == sid)
            )
        ]
        set_preferences(
            s,
            sid,
            variant=str(form.get("variant", "")),
            lists={lid: lid in chosen for lid in offered},
        )
    return preferences(token, saved=True)


@router.get("/p/{token}/data")
def my_data(token: str) -> Response:
    found = _prefs_subject(token)
    if found is None:
        return _bad()
    with session_scope() as s:
        data = export_personal_data(s, found[0])
    return Response(
        json.dumps(data, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={**_NO_CACHE, "Content-Disposition": 'attachment; filename="my-data.json"'},
    )


@router.post("/p/{token}/erase", response_class=HTMLResponse)
async def erase(token: str, request: Request) -> HTMLResponse:
    found = _prefs_subject(token)
    if found is None:
        return _bad()
    sid, variant = found
    form = await request.form()
    if form.get("confirm") != "yes":
        return _bad()
    with session_scope() as s:
        erase_subscriber(s, sid, actor="subscriber")
    return _render("info.html", variant, title=T[variant]["erased"], body=T[variant]["erased_body"])
