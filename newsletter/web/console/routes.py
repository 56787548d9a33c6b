"""The console's HTML pages (server-rendered Jinja2, a little vanilla JavaScript).

Every route depends on :func:`~.auth.need` with the role it requires, except
the login page, the language switch and the static files.  Forms post back
here and redirect (POST → redirect → GET) with a signed flash message.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from itsdangerous import BadSignature
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select, update

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError, NotFound
from newsletter.core.ratelimit import hit
from newsletter.core.resources import resource_path
from newsletter.models import RateCounter, utcnow
from newsletter.models.console import User
from newsletter.web.console import charts
from newsletter.web.console import services as svc
from newsletter.web.console.auth import (
    Principal,
    anon_nonce,
    authenticate,
    check_password,
    clear_session,
    client_ip,
    csrf_ok,
    csrf_token,
    issue_session,
    need,
    record,
    safe_next,
    secure_cookies,
    set_anon_cookie,
)
from newsletter.web.console.flash import FLASH, back, flash_signer
from newsletter.web.console.i18n import (
    AUDIT_ACTIONS,
    BULK_ACTION_NAMES,
    DELIVERY_STATES,
    DOMAIN_GROUPS,
    JOB_KINDS,
    JOB_STATES,
    LANGS,
    ROLE_NAMES,
    SEND_ACTIONS,
    SEND_STATES,
    SUB_STATUS,
    lint_label,
    translator,
)
from newsletter.web.console.services.relays import send_relay_facts
from newsletter.web.console.share import share_info
from newsletter.web.console.subjects import subject_panel
from newsletter.web.console.switches import local_login_enabled, sso_configured

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)
T = TypeVar("T")

TEMPLATES = resource_path("templates", "console")
STATIC = resource_path("web", "static")
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape())
_env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": True}
_env.filters["pct"] = lambda v: f"{(v or 0) * 100:.1f}%"
_env.filters["num"] = lambda v: f"{v:,}" if isinstance(v, int) else ("" if v is None else v)
_env.filters["when"] = lambda v: (v or "")[:16].replace("T", " ")
_env.globals.update(send_states=SEND_STATES, sub_status=SUB_STATUS, role_names=ROLE_NAMES,
                    audit_actions=AUDIT_ACTIONS, delivery_states=DELIVERY_STATES,
                    lint_label=lint_label, job_states=JOB_STATES, job_kinds=JOB_KINDS,
                    bulk_actions=BULK_ACTION_NAMES, domain_groups=DOMAIN_GROUPS)

LANG = "nl_lang"
LOGIN_WINDOW = 900
LOGIN_PER_USER = 5
LOGIN_PER_IP = 30

Viewer = Annotated[Principal, Depends(need("marketing"))]
Editor = Annotated[Principal, Depends(need("editor"))]
Ops = Annotated[Principal, Depends(need("ops"))]
Admin = Annotated[Principal, Depends(need("admin"))]

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
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    nonce = user.nonce if user else anon_nonce(request)
    body = _env.get_template(name).render(
        _=translator(lang), lang=lang, user=user, csrf=csrf_token(nonce), flash=flash,
        path=request.url.path, here=quote(here, safe=""),
        alerts=svc.open_alerts() if user is not None else [], **ctx,
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
    return int(s.scalar(select(RateCounter.count).where(RateCounter.key == key,
                                                       RateCounter.window_start == start)) or 0)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "") -> HTMLResponse:
    user = authenticate(request)
    if user is not None and user.via == "session":
        return back(safe_next(next))  # type: ignore[return-value]
    return page(request, "login.html", None, next=safe_next(next), **_login_options())


def _login_options() -> dict[str, Any]:
    with session_scope() as s:
        local = local_login_enabled(s)
    return {"sso": sso_configured(), "sso_label": get_settings().oidc_label, "local": local}


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    target = safe_next(next)
    opts = _login_options()
    if not csrf_ok(request.cookies.get("nl_anon", ""), csrf):
        return page(request, "login.html", None, 403, next=target,
                    error="表单已过期，请刷新页面", **opts)
    if not opts["local"]:
        return page(request, "login.html", None, 403, next=target,
                    error="本地账号登录已关闭，请使用单点登录", **opts)
    username = username.strip().lower()[:320]
    ip = client_ip(request)
    ukey, ikey = f"console-login:user:{username}", f"console-login:ip:{ip}"
    # Reserve an attempt first, atomically (INSERT … ON CONFLICT DO UPDATE … RETURNING,
    # committed before the password is looked at): of N parallel tries, at most the
    # limit ever reach the password check.
    with session_scope() as s:
        user_ok = hit(s, ukey, window_seconds=LOGIN_WINDOW, limit=LOGIN_PER_USER)
        ip_ok = hit(s, ikey, window_seconds=LOGIN_WINDOW, limit=LOGIN_PER_IP)
        if not (user_ok and ip_ok):
            record(s, username or "-", "login.throttled", username, request)
    if not (user_ok and ip_ok):
        return page(request, "login.html", None, 429, next=target,
                    error="尝试次数过多，请稍后再试", **opts)
    with session_scope() as s:
        user = s.scalar(select(User).where(User.username == username))
        ok = check_password(user, password) and user is not None and user.active
        if not ok:
            record(s, username or "-", "login.failed", username, request)
            failed = True
        else:
            assert user is not None
            user.last_login_at = utcnow()
            record(s, user.username, "login", user.username, request)
            _refund(s, ukey)  # a successful login does not count against the user's limit
            failed = False
    if failed:
        return page(request, "login.html", None, 401, next=target,
                    error="登录失败：用户名或密码错误", **opts)
    assert user is not None
    resp = RedirectResponse(target, status_code=303)
    issue_session(resp, user)
    return resp


def _refund(s: Any, key: str) -> None:
    epoch = int(utcnow().timestamp()) // LOGIN_WINDOW * LOGIN_WINDOW
    start = dt.datetime.fromtimestamp(epoch, dt.UTC)
    s.execute(
        update(RateCounter)
        .where(RateCounter.key == key[:200], RateCounter.window_start == start,
               RateCounter.count > 0)
        .values(count=RateCounter.count - 1)
    )


@router.post("/logout")
def logout(request: Request, user: Viewer) -> Response:
    # Revoke on the server: the session version moves on, so this cookie (and any copy
    # of it) stops working, not just the browser's copy.
    with session_scope() as s:
        row = s.get(User, user.user_id)
        sso = row is not None and row.auth_source == "oidc"
        if row is not None:
            row.session_version += 1
        record(s, user, "logout", user.username, request)
    # A single sign-on account goes on to the provider's logout (RP-initiated).
    resp = back("/console/sso/logout" if sso else "/console/login")
    clear_session(resp)
    return resp


@router.get("/lang")
def switch_lang(to: str = "zh", next: str = "/console/") -> Response:
    resp = RedirectResponse(safe_next(next), status_code=303)
    resp.set_cookie(LANG, to if to in LANGS else "zh", max_age=365 * 86400, samesite="lax",
                    secure=secure_cookies(), path="/console", httponly=True)
    return resp


@router.get("/static/{path:path}")
def static(path: str) -> Response:
    from newsletter.core.safety.safepath import reference_problem

    # Same rule as every other file reference: no control character, resolve, stay inside.
    if "\x00" in path or reference_problem(STATIC, path) is not None:
        raise HTTPException(404)
    target = (STATIC / path).resolve()
    if STATIC.resolve() not in target.parents or not target.is_file():
        raise HTTPException(404)
    ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, media_type=ctype,
                        headers={"Cache-Control": "public, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})


# -- overview --------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(request: Request, user: Viewer) -> HTMLResponse:
    return page(request, "home.html", user, counts=svc.dashboard(),
                sends=svc.list_sends(limit=8), issues=svc.list_issues(limit=5),
                charts=_home_charts(lang_of(request)))


#: Line colours of the list-growth chart (AA contrast on white).
_SERIES = ("#2f6fde", "#b4520f", "#1d7a3a", "#8a3ab9", "#a3243b")


def _home_charts(lang: str) -> dict[str, Any]:
    """The dashboard's charts (server-drawn SVG), or None where there is no data yet."""
    d = svc.charts_data()
    _ = translator(lang)
    labels = [w[5:].replace("-", "/") for w in d["weeks"]]
    return {
        "sends": charts.bars(_("每周发送邮件数（计划收件人）"), labels, d["recipients"])
        if d["has_sends"] else None,
        "opens_unique": charts.bars(_("每周独立打开（人，首次打开）"), labels, d["opens_unique"],
                                    color="#1d7a3a") if d["has_opens"] else None,
        "opens_total": charts.bars(_("每周打开总次数（人，含重复打开）"), labels,
                                   d["opens_total"], color="#b4520f") if d["has_opens"] else None,
        "growth": charts.lines(
            _("各列表有效订阅（每周末）"), labels,
            [(x["name"], x["values"], _SERIES[i % len(_SERIES)])
             for i, x in enumerate(d["lists"])], percent=False,
        ) if d["has_lists"] else None,
        "data": d,
    }


# -- issues ----------------------------------------------------------------------


@router.get("/issues", response_class=HTMLResponse)
def issues_page(request: Request, user: Viewer) -> HTMLResponse:
    return page(request, "issues.html", user, issues=svc.list_issues())


@router.post("/issues")
async def issues_upload(
    request: Request,
    user: Editor,
    file: Annotated[UploadFile | None, File()] = None,
    source: Annotated[str, Form()] = "",
    images: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    data, name = b"", "issue.md"
    if file is not None and file.filename:
        data, name = await file.read(), file.filename
    elif source.strip():
        data = source.replace("\r\n", "\n").encode()
    imgs = [(im.filename or "", await im.read()) for im in images or [] if im.filename]
    try:
        out = svc.upload_issue(user, name, data, imgs, request)
    except NewsletterError as exc:
        # Shown on the same page with everything the user typed still in the form.
        return page(request, "issues.html", user, 422, issues=svc.list_issues(),
                    source=source, error=_error(exc, "上传失败 / upload failed"))
    return back(f"/console/issues/{out['id']}", f"第{out['number']}期已保存 / saved")


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request, user: Editor) -> HTMLResponse:
    return page(request, "import.html", user, result=None, classes=_import_classes())


def _import_classes() -> tuple[str, ...]:
    from newsletter.content.textimport import CLASSES

    return CLASSES


@router.post("/import", response_class=HTMLResponse)
async def import_run(request: Request, user: Editor) -> Response:
    """Import pasted text (or a file), or re-run it with the editor's reclassifications."""
    import json

    from starlette.datastructures import UploadFile as FormFile

    from newsletter.content.textimport import parse_hints

    form = await request.form()
    upload = form.get("file")
    data = b""
    if isinstance(upload, FormFile) and upload.filename:
        data = await upload.read()
    else:
        data = str(form.get("text") or "").replace("\r\n", "\n").encode()
    try:
        previous = json.loads(str(form.get("classes") or "{}"))
        hints = parse_hints(json.loads(str(form.get("hints") or "{}")))
        for key, value in form.items():
            if key.startswith("c") and key[1:].isdigit() and previous.get(key[1:]) != value:
                hints |= parse_hints({key[1:]: str(value)})
        raw_number = str(form.get("number") or "").strip()
        number = int(raw_number) if raw_number.isdigit() else None
        result = svc.import_preview(data, hints, number)
    except (ValueError, NewsletterError) as exc:
        return page(request, "import.html", user, 422, result=None, classes=_import_classes(),
                    text=data.decode("utf-8", "replace"), number=str(form.get("number") or ""),
                    error=_error(exc, "导入失败 / import failed"))
    classes = {str(n): cls for n, cls, _t in result["outline"]}
    return page(request, "import.html", user, result=result, classes=_import_classes(),
                shown=json.dumps(classes), hints_json=json.dumps(result["hints"]),
                number=raw_number)


@router.post("/import/save")
def import_save(request: Request, user: Editor, markdown: Annotated[str, Form()] = "") -> Response:
    try:
        out = svc.upload_issue(user, "import.md", markdown.replace("\r\n", "\n").encode(),
                               None, request)
    except NewsletterError as exc:
        kept = {"outline": [], "text": "", "script": "", "chrome": [], "contents": [],
                "warnings": [], "markdown": markdown}
        return page(request, "import.html", user, 422, result=kept, classes=_import_classes(),
                    shown="{}", hints_json="{}", number="",
                    error=_error(exc, "保存失败 / save failed"))
    return back(f"/console/issues/{out['id']}", f"第{out['number']}期已保存 / saved")


@router.get("/issues/{issue_id}", response_class=HTMLResponse)
def issue_page(request: Request, user: Viewer, issue_id: int, v: str = "zh-Hans") -> HTMLResponse:
    v = v if v in ("zh-Hans", "zh-Hant") else "zh-Hans"
    try:
        issue = svc.load_issue_row(issue_id)
    except NotFound:
        return _missing(request, user)
    try:
        outputs = svc.preview_outputs(issue_id, v)
        render_error = None
    except NewsletterError as exc:
        outputs, render_error = {"outputs": {}, "wechat": []}, _error(exc)
    return page(request, "issue.html", user, issue=issue, v=v, preview=outputs,
                render_error=render_error, lint=svc.lint(issue_id),
                lists=svc.lists(counts=False), segments=svc.segments(),
                sends=svc.list_sends(issue_id=issue_id))


@router.get("/issues/{issue_id}/frame/{output}", response_class=HTMLResponse)
def issue_frame(user: Viewer, issue_id: int, output: str, v: str = "zh-Hans") -> HTMLResponse:
    allowed = output in ("email_html", "email_text", "web", "digest") or (
        output.startswith("wechat-") and output[7:].isdigit()
    )
    if not allowed:
        raise HTTPException(404)
    try:
        body = svc.frame_html(issue_id, output, v)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    # Rendered content runs in its own sandboxed origin: no script, no access to the console.
    return HTMLResponse(body, headers={
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src * data:; "
                                   "style-src 'unsafe-inline'; font-src * data:",
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
    })


@router.post("/issues/{issue_id}/approve")
def issue_approve(request: Request, user: Editor, issue_id: int) -> Response:
    return _done(lambda: svc.approve_issue(user, issue_id, request),
                 f"/console/issues/{issue_id}", "已审核通过 / approved")


@router.post("/issues/{issue_id}/test-send")
def issue_test_send(
    request: Request, user: Ops, issue_id: int,
    to: Annotated[str, Form()] = "", variant: Annotated[str, Form()] = "zh-Hans",
) -> Response:
    try:
        res = svc.test_send(user, issue_id, to.replace("，", ",").replace(";", ",").split(","),
                            variant, request)
    except (NewsletterError, OSError) as exc:
        return back(f"/console/issues/{issue_id}", _error(exc), "error")
    def said(state: str) -> str:
        return f"{DELIVERY_STATES[state]} / {state}" if state in DELIVERY_STATES else state

    text = "; ".join(f"{r['to']} ({r['variant']}): {said(r['state'])}" for r in res)
    ok = all(r["state"] == "sent" for r in res)
    return back(f"/console/issues/{issue_id}", "测试邮件 / test: " + text, "ok" if ok else "error")


@router.post("/issues/{issue_id}/sends")
def issue_create_send(
    request: Request, user: Ops, issue_id: int,
    list_id: Annotated[int, Form()],
    mode: Annotated[str, Form()] = "now",
    at: Annotated[str, Form()] = "",
    variant: Annotated[str, Form()] = "preference",
    segment_id: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    if mode == "now" and confirm != "yes":  # "send now" asks first, naming who gets it
        try:
            facts = svc.send_now_facts(issue_id, list_id, segment_id, variant)
        except NewsletterError as exc:
            return back(f"/console/issues/{issue_id}", _error(exc), "error")
        return page(request, "confirm_send.html", user, f=facts)
    try:
        when = None
        if mode == "schedule" and at.strip():
            try:
                when = dt.datetime.fromisoformat(at.strip())
            except ValueError:
                raise svc.ConsoleError("时间格式：2026-11-30T09:00+08:00 / bad time") from None
            if when.tzinfo is None:
                from zoneinfo import ZoneInfo

                pub = svc.publication()
                when = when.replace(tzinfo=ZoneInfo(pub["timezone"] if pub else "Asia/Shanghai"))
        seg = int(segment_id) if segment_id.isdigit() else None
        out = svc.create_send(user, issue_id, list_id, variant_rule=variant, segment_id=seg,
                              at=when, schedule=mode == "schedule", request=request)
        if mode == "now":
            svc.control_send(user, out["id"], "start", request)
    except NewsletterError as exc:
        return back(f"/console/issues/{issue_id}", _error(exc), "error")
    return back(f"/console/sends/{out['id']}", f"发送任务 {out['id']} / send {out['id']}")


# -- sends -----------------------------------------------------------------------


@router.get("/sends", response_class=HTMLResponse)
def sends_page(
    request: Request, user: Viewer, q: str = "", state: str = "", p: str = "1"
) -> HTMLResponse:
    state = state if state in SEND_STATES else ""
    n = int(p) if p.isdigit() and len(p) < 6 else 1
    data = svc.search_sends(q, state, n)
    return page(request, "sends.html", user, d=data, sends=data["rows"], q=q[:100], state=state)


@router.get("/sends/{send_id}", response_class=HTMLResponse)
def send_page(request: Request, user: Viewer, send_id: int) -> HTMLResponse:
    def shown(prog: dict[str, Any]) -> HTMLResponse:
        prog.update(send_relay_facts(send_id))  # relays and warm-up of the send
        return page(request, "send.html", user, s=prog,
                    progress_json=json.dumps(prog, default=str), test=subject_panel(send_id))

    return _shown(request, user, lambda: svc.progress(send_id), shown)


@router.post("/sends/{send_id}/{action}")
def send_action(request: Request, user: Ops, send_id: int, action: str) -> Response:
    if action not in ("start", "pause", "resume", "cancel"):
        raise HTTPException(404)
    return _done(lambda: svc.control_send(user, send_id, action, request),
                 f"/console/sends/{send_id}", SEND_ACTIONS[action])


# -- subscribers -----------------------------------------------------------------


@router.get("/subscribers", response_class=HTMLResponse)
def subscribers_page(
    request: Request, user: Ops, q: str = "", list_id: str = ""
) -> HTMLResponse:
    # "全部" (all lists) sends an empty list_id; anything not a number means all lists too.
    lid = int(list_id) if list_id.strip().isdigit() and len(list_id.strip()) < 10 else None
    q = q.strip()[:200]
    results = svc.search_subscribers(q, lid) if (q or lid) else []
    matched = (len(results) if len(results) < 50 else svc.count_search(q, lid)) if results else 0
    return page(request, "subscribers.html", user, lists=svc.lists(), q=q, list_id=lid,
                results=results, searched=bool(q or lid), segments=svc.segments(),
                suppressions=svc.suppressions(), match_count=matched)


@router.get("/lists/{list_id}/export.csv")
def list_export(request: Request, user: Ops, list_id: int) -> Response:
    try:
        body = svc.export_list(user, list_id, request)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="list-{list_id}.csv"'})


@router.post("/subscribers/segments")
def segment_save(
    request: Request, user: Ops,
    name: Annotated[str, Form()] = "", definition: Annotated[str, Form()] = "",
) -> Response:
    def save() -> dict[str, Any]:
        try:
            defn = json.loads(definition or "null")
        except json.JSONDecodeError as exc:
            raise svc.ConsoleError(f"JSON: {exc.msg} (line {exc.lineno})") from None
        return svc.save_segment(user, name, defn, request)

    return _done(save, "/console/subscribers#segments", "分群已保存 / segment saved")


@router.post("/subscribers/suppressions")
def suppression_add(
    request: Request, user: Ops,
    email: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "",
) -> Response:
    return _done(lambda: svc.add_suppression(user, email, note, request),
                 "/console/subscribers#suppressions", "已添加 / added", also=(ValueError,))


@router.post("/subscribers/suppressions/remove")
def suppression_remove(request: Request, user: Ops, email: Annotated[str, Form()] = "") -> Response:
    return _done(lambda: svc.remove_suppression(user, email, request),
                 "/console/subscribers#suppressions", "已移除 / removed", also=(ValueError,))


# -- stats -----------------------------------------------------------------------


@router.get("/stats", response_class=HTMLResponse)
def stats_page(
    request: Request, user: Viewer, from_: Annotated[str, Query(alias="from")] = "",
    to: str = "",
) -> HTMLResponse:
    """The trend over sends, optionally only those started from ``from`` to ``to``
    (``YYYY-MM-DD``, inclusive); tick 2 to 4 rows to compare them side by side."""
    error, status = None, 200
    try:
        since = svc.parse_day(from_[:40], "开始")
        until = svc.parse_day(to[:40], "结束")
        if since and until and since > until:
            raise svc.ConsoleError("开始日期晚于结束日期 / the start is after the end")
    except svc.ConsoleError as exc:
        since = until = None
        error, status = _error(exc), 422
    rows = svc.trends(since=since, until=until)
    email = [r for r in rows if r["channels"] == "email"]
    _ = translator(lang_of(request))
    chart = charts.lines(
        _("独立打开率与独立点击率"), [f"#{r['issue']}" for r in email],
        [(_("独立打开率"), [r["open_rate"] for r in email], "#2f6fde"),
         (_("独立点击率"), [r["click_rate"] for r in email], "#b4520f")],
    ) if email else None
    return page(request, "stats.html", user, status, rows=list(reversed(rows)), chart=chart,
                date_from=from_[:40], date_to=to[:40], error=error,
                max_compare=svc.MAX_COMPARE)


@router.get("/stats/compare", response_class=HTMLResponse)
def stats_compare(request: Request, user: Viewer, ids: Annotated[list[str], Query()] = [],  # noqa: B006
                  ) -> HTMLResponse:
    """2 to 4 sends side by side: rates, human and machine opens, unsubscribes, links,
    variants and domains."""
    picked = [int(x) for x in ids[:20] if x.isdigit() and len(x) < 10]
    try:
        if len(picked) != len(ids[:20]):
            raise svc.ConsoleError("发送编号无效 / a send id is not a number")
        rows = svc.compare(picked)
    except NotFound as exc:
        return page(request, "compare.html", user, 404, rows=[], error=_error(exc))
    except svc.ConsoleError as exc:
        return page(request, "compare.html", user, 422, rows=[], error=_error(exc))
    variants = sorted({v["variant"] for r in rows for v in r["by_variant"]})
    groups = [g for g in dict.fromkeys(d["group"] for r in rows for d in r["by_domain"])]
    return page(request, "compare.html", user, rows=rows, error=None, variants=variants,
                groups=groups)


@router.get("/stats/trends.csv")
def trends_csv(request: Request, user: Viewer, headers: str = "") -> Response:
    """``headers=zh`` or ``en`` (default: the console's language)."""
    zh = (headers if headers in ("zh", "en") else lang_of(request)) != "en"
    return Response(svc.trends_csv(user, request, zh=zh), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="trends.csv"'})


@router.get("/stats/{send_id}", response_class=HTMLResponse)
def stats_send_page(request: Request, user: Viewer, send_id: int) -> HTMLResponse:
    def show(data: dict[str, Any]) -> HTMLResponse:
        hours = _fill_hours(data["opens_by_hour"])
        tz = dt.timezone(dt.timedelta(hours=8))
        lang = lang_of(request)
        fmt = "%m-%d %H:00" if lang == "en" else "%m-%d %H时"
        labels = [dt.datetime.fromisoformat(h).astimezone(tz).strftime(fmt) for h, _n in hours]
        chart = charts.bars(translator(lang)("每小时打开总次数（人，含重复打开）"), labels,
                            [n for _h, n in hours])
        return page(request, "stats_send.html", user, d=data, chart=chart)

    return _shown(request, user, lambda: svc.stats(send_id), show)


def _fill_hours(rows: list[tuple[str, int]], limit: int = 168) -> list[tuple[str, int]]:
    """Hourly totals with the empty hours in between (at most ``limit`` hours, the latest)."""
    if not rows:
        return []
    have = {dt.datetime.fromisoformat(h): n for h, n in rows}
    first, last = min(have), max(have)
    first = max(first, last - dt.timedelta(hours=limit - 1))
    out = []
    at = first
    while at <= last:
        out.append((at.isoformat(), have.get(at, 0)))
        at += dt.timedelta(hours=1)
    return out


@router.get("/stats/{send_id}/export.csv")
def stats_csv(request: Request, user: Viewer, send_id: int, headers: str = "") -> Response:
    zh = (headers if headers in ("zh", "en") else lang_of(request)) != "en"
    try:
        body = svc.stats_csv(user, send_id, request, zh=zh)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="send-{send_id}.csv"'})


# -- settings, account, audit ----------------------------------------------------


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, user: Admin) -> HTMLResponse:
    return page(request, "settings.html", user, pub=svc.publication(), lists=svc.lists(),
                ident=svc.sender_identity(), users=svc.list_users(), **_login_options(),
                wechat=getattr(request.state, "wechat", None))


@router.post("/settings/publication")
def settings_publication(
    request: Request, user: Admin,
    name: Annotated[str, Form()] = "", from_name: Annotated[str, Form()] = "",
    from_address: Annotated[str, Form()] = "", reply_to: Annotated[str, Form()] = "",
    postal_address: Annotated[str, Form()] = "",
    track_opens: Annotated[str, Form()] = "", track_clicks: Annotated[str, Form()] = "",
    zh_hant_table: Annotated[str, Form()] = "",
) -> Response:
    values = {
        "name": name, "from_name": from_name, "from_address": from_address,
        "reply_to": reply_to, "postal_address": postal_address,
        "track_opens": track_opens == "on", "track_clicks": track_clicks == "on",
        "zh_hant_table": zh_hant_table,
    }
    return _done(
        lambda: svc.update_publication(user, values, request), "/console/settings", "已保存 / saved"
    )


@router.post("/settings/schedule")
def settings_schedule(
    request: Request, user: Admin,
    weekday: Annotated[int, Form()], time: Annotated[str, Form()],
    timezone: Annotated[str, Form()] = "Asia/Shanghai", default_list: Annotated[str, Form()] = "",
) -> Response:
    return _done(lambda: svc.update_schedule(user, weekday, time, timezone, default_list, request),
                 "/console/settings", "已保存 / saved")


@router.post("/settings/wechat-check")
def settings_wechat(request: Request, user: Admin) -> Response:
    out = svc.wechat_check(user, request)
    msg = "公众号 / WeChat: " + ("ok " + json.dumps(out.get("mass_send_quota", {}))
                                 if out.get("ok") else str(out.get("message", "failed")))
    return back("/console/settings", msg, "ok" if out.get("ok") else "error")


@router.post("/settings/users")
def settings_user_create(
    request: Request, user: Admin,
    username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "marketing", display_name: Annotated[str, Form()] = "",
) -> Response:
    return _done(lambda: svc.create_user(user, username, password, role, display_name, request),
                 "/console/settings#users", "用户已创建 / user created")


@router.post("/settings/users/{user_id}")
def settings_user_update(
    request: Request, user: Admin, user_id: int,
    role: Annotated[str, Form()] = "", active: Annotated[str, Form()] = "",
) -> Response:
    return _done(
        lambda: svc.update_user(user, user_id, role=role or None,
                                active=None if active == "" else active == "1", request=request),
        "/console/settings#users",
        "已保存 / saved",
    )


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, user: Viewer) -> HTMLResponse:
    return page(request, "account.html", user, tokens=svc.tokens(user.user_id), new_token=None)


@router.post("/account/tokens", response_class=HTMLResponse)
def account_token_create(
    request: Request, user: Viewer, name: Annotated[str, Form()] = "",
    days: Annotated[int, Form()] = 90,
) -> HTMLResponse:
    out = svc.create_token(user, user.user_id, name or "api", max(1, min(days, 365)), request)
    # Shown once, in this response only (not through a redirect or a cookie).
    return page(request, "account.html", user, tokens=svc.tokens(user.user_id), new_token=out)


@router.post("/account/tokens/{token_id}/revoke")
def account_token_revoke(request: Request, user: Viewer, token_id: int) -> Response:
    return _done(lambda: svc.revoke_token(user, token_id, request),
                 "/console/account", "已吊销 / revoked")


@router.post("/account/password")
def account_password(
    request: Request, user: Viewer,
    current: Annotated[str, Form()] = "", new: Annotated[str, Form()] = "",
) -> Response:
    with session_scope() as s:
        me = s.get(User, user.user_id)
        ok = check_password(me, current)
    if not ok:
        return back("/console/account", "当前密码错误 / wrong current password", "error")
    return _done(
        lambda: svc.update_user(user, user.user_id, password=new, request=request),
        "/console/login",
        "密码已修改，请重新登录 / password changed; log in again",
        back_to="/console/account",
    )


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, user: Admin) -> HTMLResponse:
    return page(request, "audit.html", user, entries=svc.audit_entries(200))


# -- error pages -----------------------------------------------------------------

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


def _search_url(q: str, list_id: str) -> str:
    from urllib.parse import urlencode

    return "/console/subscribers?" + urlencode({"q": q[:200], "list_id": list_id[:12]}) + "#search"


@router.post("/lists")
def list_create(
    request: Request, user: Ops,
    name: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "",
    double_opt_in: Annotated[str, Form()] = "",
) -> Response:
    return _done(lambda: svc.create_list(user, name, description, double_opt_in == "on", request),
                 "/console/subscribers#lists", lambda out: f"列表“{out['name']}”已创建 / list created")


@router.get("/lists/{list_id}", response_class=HTMLResponse)
def list_page(request: Request, user: Ops, list_id: int) -> HTMLResponse:
    found = [x for x in svc.lists() if x["id"] == list_id]
    if not found:
        return error_page(request, 404)
    return page(request, "list.html", user, l=found[0], share=share_info(list_id))


@router.post("/lists/{list_id}")
def list_update(
    request: Request, user: Ops, list_id: int,
    name: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "",
    double_opt_in: Annotated[str, Form()] = "",
) -> Response:
    return _done(
        lambda: svc.update_list(user, list_id, name, description, double_opt_in == "on", request),
        "/console/subscribers#lists",
        "已保存 / saved",
        back_to=f"/console/lists/{list_id}",
        missing=request,
    )


@router.post("/lists/{list_id}/delete")
def list_delete(request: Request, user: Ops, list_id: int) -> Response:
    return _done(
        lambda: svc.delete_list(user, list_id, request),
        "/console/subscribers#lists",
        lambda name: f"列表“{name}”已删除 / list deleted",
        back_to=f"/console/lists/{list_id}",
        missing=request,
    )


@router.post("/subscribers/bulk")
async def subscribers_bulk(request: Request, user: Ops) -> Response:
    form = await request.form()
    q, from_raw = str(form.get("q") or ""), str(form.get("list_id") or "")
    to_raw, action = str(form.get("to_list") or ""), str(form.get("action") or "")
    ids = [int(x) for x in form.getlist("ids") if isinstance(x, str) and x.isdigit() and len(x) < 19]
    here = _search_url(q, from_raw)
    words = {"unsubscribe": "已退订 / unsubscribed", "move": "已移动 / moved",
             "block": "已封禁 / blocked", "delete": "已删除 / deleted"}
    return _done(
        lambda: svc.bulk_subscribers(
            user, ids, action,
            from_list=int(from_raw) if from_raw.isdigit() and len(from_raw) < 10 else None,
            to_list=int(to_raw) if to_raw.isdigit() and len(to_raw) < 10 else None,
            request=request),
        here,
        lambda n: f"{n} 人{words[action]}",
    )


def _num(raw: str) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


@router.post("/subscribers/bulk-job")
async def subscribers_bulk_job(request: Request, user: Ops) -> Response:
    """A bulk action over every subscriber of the search (or of a segment), as a job."""
    form = await request.form()
    q, list_raw = str(form.get("q") or ""), str(form.get("list_id") or "")
    seg_raw, to_raw = str(form.get("segment_id") or ""), str(form.get("to_list") or "")
    action = str(form.get("action") or "")
    here = (_search_url(q, list_raw) if not seg_raw else "/console/subscribers#segments")
    return _job_started(
        lambda: svc.start_bulk_job(user, action, q=q, list_id=_num(list_raw),
                                   segment_id=_num(seg_raw), to_list=_num(to_raw),
                                   request=request), here)


def _job_started(call: Callable[[], dict[str, Any]], back_to: str) -> Response:
    """Start a job and go to its page; a refusal goes back with the reason."""
    try:
        job = call()
    except NewsletterError as exc:
        return back(back_to, _error(exc), "error")
    return back(f"/console/jobs/{job['id']}", "已加入后台任务 / queued as a job")


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, user: Ops) -> HTMLResponse:
    return page(request, "jobs.html", user, jobs=svc.list_jobs(100))


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, user: Ops, job_id: int) -> HTMLResponse:
    return _shown(request, user, lambda: svc.get_job(job_id), lambda job: page(
        request, "job.html", user, job=job))


@router.post("/jobs/{job_id}/resume")
def job_resume(request: Request, user: Ops, job_id: int) -> Response:
    return _job_started(lambda: svc.resume_job(user, job_id, request), f"/console/jobs/{job_id}")


@router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse)
def subscriber_page(request: Request, user: Ops, subscriber_id: int) -> HTMLResponse:
    try:
        sub = svc.get_subscriber(subscriber_id)
    except NotFound:
        return error_page(request, 404)
    return page(request, "subscriber.html", user, s=sub)


@router.post("/subscribers/{subscriber_id}")
def subscriber_update(
    request: Request, user: Ops, subscriber_id: int,
    name: Annotated[str, Form()] = "", variant: Annotated[str, Form()] = "zh-Hans",
) -> Response:
    return _done(lambda: svc.update_subscriber(user, subscriber_id, name, variant, request),
                 f"/console/subscribers/{subscriber_id}", "已保存 / saved", missing=request)


@router.post("/subscribers/{subscriber_id}/delete")
def subscriber_delete(request: Request, user: Ops, subscriber_id: int) -> Response:
    return _done(
        lambda: svc.bulk_subscribers(user, [subscriber_id], "delete", request=request),
        "/console/subscribers",
        "已删除 / deleted",
        back_to=f"/console/subscribers/{subscriber_id}",
    )


@router.get("/bounces", response_class=HTMLResponse)
def bounces_page(request: Request, user: Ops, kind: str = "", p: str = "1") -> HTMLResponse:
    n = int(p) if p.isdigit() and len(p) < 6 else 1
    data = svc.bounces(kind, n)
    return page(request, "bounces.html", user, d=data, kind=kind if kind in svc.BOUNCE_REASONS
                else "", pages=max(1, -(-data["total"] // data["per_page"])))
