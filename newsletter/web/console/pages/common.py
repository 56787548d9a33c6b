"""What every console page shares: the Jinja2 environment, the page renderer (language,
role, flash, security headers), the one-line error text, and the error pages.

Pages live per domain beside this module (``pages/issues.py``, ``pages/sends.py`` …),
mirroring ``services/``; each has its own router, gathered by ``console.routes``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import (
    HTMLResponse,
    Response,
)
from itsdangerous import BadSignature
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from sqlalchemy import select

from newsletter.core.errors import NewsletterError, NotFound
from newsletter.core.resources import package_path, resource_path
from newsletter.models import RateCounter, utcnow
from newsletter.web.console import auth
from newsletter.web.console import services as svc
from newsletter.web.console.auth import (
    Principal,
    anon_nonce,
    authenticate,
    csrf_token,
    need,
    set_anon_cookie,
)
from newsletter.web.console.flash import FLASH, back, flash_signer
from newsletter.web.console.i18n import (
    AUDIT_ACTIONS,
    BULK_ACTION_NAMES,
    CHANNEL_NAMES,
    DELIVERY_STATES,
    DOMAIN_GROUPS,
    JOB_KINDS,
    JOB_STATES,
    LANGS,
    ROLE_NAMES,
    SEND_STATES,
    SUB_STATUS,
    ZONE_NAMES,
    lint_label,
    translator,
)

T = TypeVar("T")

TEMPLATES = resource_path("templates", "console")
STATIC = package_path("newsletter.web", "static")
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape())
_env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": True}


def pct(value: float | None) -> str:
    """A rate people can trust: below 1% two significant figures (0.040%), never 0.0% for a
    rate that is not zero."""
    p = (value or 0) * 100
    if p == 0:
        return "0%"
    if p < 1:
        return f"{p:#.2g}%"
    return f"{p:.1f}%"


def when(value: object, zone: str = "Asia/Shanghai") -> str:
    """A stored UTC time shown in the publication's zone, with the zone named."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    if not value:
        return ""
    try:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)[:16].replace("T", " ")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        local = moment.astimezone(ZoneInfo(zone))
    except (KeyError, ValueError):
        zone, local = "UTC", moment.astimezone(dt.UTC)
    from newsletter.web.console.services.issues import zone_label

    return f"{local:%Y-%m-%d %H:%M} {zone_label(zone)}"


@pass_context
def _when_for_reader(ctx: Any, value: object, zone: str = "Asia/Shanghai") -> str:
    """:func:`when` with the zone's name in the page's language (Beijing time…)."""
    from newsletter.web.console.services.issues import zone_label

    text = when(value, zone)
    translate = ctx.get("_")
    label = zone_label(zone if zone else "Asia/Shanghai")
    if text and translate is not None and text.endswith(label):
        text = text[: -len(label)] + translate(label)
    return text


_env.filters["pct"] = pct
_env.filters["num"] = lambda v: f"{v:,}" if isinstance(v, int) else ("" if v is None else v)
_env.filters["when"] = _when_for_reader


@pass_context
def _zoned(ctx: Any, text: object) -> str:
    """A time already written with its zone's name (``… 北京时间``): the name in the
    page's language."""
    out = str(text or "")
    translate = ctx.get("_")
    for label in ZONE_NAMES.values():
        if translate is not None and out.endswith(" " + label):
            return out[: -len(label)] + translate(label)
    return out


_env.filters["zoned"] = _zoned
_env.filters["said"] = pass_context(lambda ctx, text: said(str(text), ctx.get("lang", "zh")))
_env.globals.update(
    send_states=SEND_STATES,
    sub_status=SUB_STATUS,
    role_names=ROLE_NAMES,
    audit_actions=AUDIT_ACTIONS,
    delivery_states=DELIVERY_STATES,
    lint_label=lint_label,
    job_states=JOB_STATES,
    job_kinds=JOB_KINDS,
    bulk_actions=BULK_ACTION_NAMES,
    domain_groups=DOMAIN_GROUPS,
    channel_names=CHANNEL_NAMES,
    zone_names=ZONE_NAMES,
)

LANG = "nl_lang"
LOGIN_WINDOW, LOGIN_PER_USER, LOGIN_PER_IP = (
    auth.LOGIN_WINDOW,
    auth.LOGIN_PER_USER,
    auth.LOGIN_PER_IP,
)

Viewer = Annotated[Principal, Depends(need("marketing"))]
Editor = Annotated[Principal, Depends(need("editor"))]
Ops = Annotated[Principal, Depends(need("ops"))]
Admin = Annotated[Principal, Depends(need("admin"))]
#: Any signed-in person, including one who must enrol a second factor first.
Enrolling = Annotated[Principal, Depends(need("marketing", enrolling=True))]

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-src 'self'; frame-ancestors 'self'; form-action 'self'; "
        "base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def lang_of(request: Request) -> str:
    value = request.cookies.get(LANG)
    return value if value in LANGS else "zh"


_FOCUSABLE = re.compile(r"<(a|area|button|input|select|textarea|summary)\b", re.I)


def out_of_tab_order(html: str) -> str:
    """A preview is one stop for the keyboard (its frame's wrapper): the links inside it
    are taken out of the tab order, so Tab moves past the preview, not through it."""
    return _FOCUSABLE.sub(lambda m: f'<{m.group(1)} tabindex="-1"', html)


def said(text: str, lang: str) -> str:
    """A one-line message written in both languages (``中文 / English``), as the reader of the
    console reads it: the Chinese half (converted for 繁體) or the English half. Text that
    does not split cleanly stays whole."""
    from newsletter.core.catalogue import for_reader

    if lang == "en":
        return for_reader(text, "en")
    zh = for_reader(text, "zh-Hans")
    if lang == "zh-Hant":
        from newsletter.content.variants import convert_text

        return convert_text(zh)
    return zh


def _people() -> Callable[[str | None], str]:
    """``who(username)``: the person's display name (else the username), for one page;
    the names are read once, when the page first asks."""
    names: dict[str, str] = {}

    def who(username: str | None) -> str:
        if not username:
            return ""
        if not names:
            from sqlalchemy import select

            from newsletter.core.db import session_scope
            from newsletter.models import User

            with session_scope() as s:
                names.update(
                    (u, d or u) for u, d in s.execute(select(User.username, User.display_name))
                )
            names.setdefault("", "")
        return names.get(username, username)

    return who


def page(
    request: Request, name: str, user: Principal | None, status: int = 200, **ctx: Any
) -> HTMLResponse:
    lang = lang_of(request)
    flash = None
    raw = request.cookies.get(FLASH)
    if raw:
        try:
            flash = flash_signer().loads(raw)
        except BadSignature:
            flash = None
        if flash and isinstance(flash, list) and len(flash) == 2:
            flash = [flash[0], said(str(flash[1]), lang)]
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    nonce = user.nonce if user else anon_nonce(request)
    body = _env.get_template(name).render(
        _=translator(lang),
        lang=lang,
        user=user,
        csrf=csrf_token(nonce),
        flash=flash,
        path=request.url.path,
        here=quote(here, safe=""),
        alerts=svc.open_alerts() if user is not None else [],
        who=_people(),
        **ctx,
    )
    resp = HTMLResponse(body, status_code=status, headers=HEADERS)
    if raw:
        resp.delete_cookie(FLASH, path="/console")
    if user is None and getattr(request.state, "new_anon", None):
        set_anon_cookie(resp, request.state.new_anon)
    return resp


_PATH = re.compile(r"(?<![\w:/.])(?:/[\w.\-\u4e00-\u9fff]+){2,}")
_CJK = re.compile(r"[\u3400-\u9fff]")


def _error(exc: Exception, what: str = "出错 / error") -> str:
    """One line for the user: no server path (a file is named by its own name), and in
    Chinese and English (a message without Chinese gets the bilingual ``what`` first)."""
    lines = (str(exc) or exc.__class__.__name__).strip().splitlines() or [""]
    text = _PATH.sub(lambda m: Path(m.group()).name, lines[0])[:400]
    return text if _CJK.search(text) else f"{what}: {text}"


def _done(
    call: Callable[[], T],
    to: str,
    said: str | Callable[[T], str],
    *,
    back_to: str | None = None,
    also: tuple[type[Exception], ...] = (),
    missing: Request | None = None,
) -> Response:
    """A form's action: call the service, then redirect to ``to`` saying what was done.

    A refusal (:class:`NewsletterError`, or one of ``also``) goes back to
    ``back_to`` (default ``to``) with the reason instead.  Given ``missing`` (the
    request), a row that does not exist is the 404 page rather than a message.
    """
    refused: tuple[type[Exception], ...] = (NewsletterError, *also)
    try:
        out = call()
    except refused as exc:
        if missing is not None and isinstance(exc, NotFound):
            return error_page(missing, 404)
        return back(back_to or to, _error(exc), "error")
    return back(to, said(out) if callable(said) else said)


def _missing(request: Request, user: Principal) -> HTMLResponse:
    return page(request, "error.html", user, 404, message="未找到")


def _shown(
    request: Request, user: Principal, load: Callable[[], T], show: Callable[[T], HTMLResponse]
) -> HTMLResponse:
    """A page of one row: ``show`` what ``load`` finds, or the not-found page."""
    try:
        found = load()
    except NotFound:
        return _missing(request, user)
    return show(found)


# -- login -----------------------------------------------------------------------


def _window_count(s: Any, key: str) -> int:
    now = utcnow()
    epoch = int(now.timestamp()) // LOGIN_WINDOW * LOGIN_WINDOW
    start = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return int(
        s.scalar(
            select(RateCounter.count).where(
                RateCounter.key == key, RateCounter.window_start == start
            )
        )
        or 0
    )


_ERRORS = {
    400: "请求无效",
    401: "需要登录",
    403: "没有权限",
    404: "未找到",
    405: "不支持此操作",
    413: "内容过大",
    422: "请求无效",
    429: "请求过多，请稍后再试",
}


def error_page(request: Request, status: int, detail: str = "") -> HTMLResponse:
    """A console error as an HTML page in the user's language, with a way back."""
    try:
        user = authenticate(request)
    except Exception:  # an error page must render even if the session is odd
        user = None
    message = _ERRORS.get(status, "出错了")
    if status == 403 and "CSRF" in detail:
        message = "表单已过期，请刷新页面"
    return page(request, "error.html", user, status, message=message, code=status)


def install_error_pages(app: Any) -> None:
    """Errors under /console are pages (title, lang, a way back); /api stays JSON."""
    from fastapi.exception_handlers import (
        http_exception_handler,
        request_validation_exception_handler,
    )
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def wants_page(request: Request) -> bool:
        return request.url.path.startswith("/console")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if wants_page(request) and exc.status_code >= 400:
            resp = error_page(request, exc.status_code, str(exc.detail or ""))
            for k, v in (exc.headers or {}).items():
                resp.headers.setdefault(k, v)
            return resp
        return await http_exception_handler(request, exc)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if wants_page(request):
            return error_page(request, 400)
        return await request_validation_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)


# -- lists and subscribers: create, edit, delete, bulk (ops) -----------------------------
