"""The ``newsletter`` command line (Typer). Every command has ``--help``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer._click as click  # the Click that Typer is built on (vendored)
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from .errors import NewsletterError

app = typer.Typer(
    help="Weekly newsletter for email and WeChat / 邮件与公众号周报分发", no_args_is_help=True
)
db_app = typer.Typer(help="Database migrations", no_args_is_help=True)
issue_app = typer.Typer(help="Issues: add, lint, render, import plain text", no_args_is_help=True)
subs_app = typer.Typer(help="Subscribers: import and export", no_args_is_help=True)
lists_app = typer.Typer(help="Mailing lists", no_args_is_help=True)
send_app = typer.Typer(
    help="Sends: create, start, pause, resume, cancel, status", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(issue_app, name="issue")
app.add_typer(subs_app, name="subscribers")
app.add_typer(lists_app, name="lists")
app.add_typer(send_app, name="send")
schedule_app = typer.Typer(help="Weekly schedule of a publication", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")
supp_app = typer.Typer(help="The global suppression list", no_args_is_help=True)
app.add_typer(supp_app, name="suppressions")
seg_app = typer.Typer(help="Saved segments (JSON filters)", no_args_is_help=True)
app.add_typer(seg_app, name="segments")
bounce_app = typer.Typer(help="Bounces and complaints: DSN/ARF intake", no_args_is_help=True)
app.add_typer(bounce_app, name="bounces")


# Sub-command groups whose modules are slow to import (FastAPI, SQLAlchemy
# models, cryptography): loaded only when that group is used, so that
# `newsletter --help` and `issue lint` start fast.  name -> (module,
# attribute, one-line help shown in `newsletter --help`).
_LAZY_GROUPS: dict[str, tuple[str, str, str]] = {
    "dkim": (
        "newsletter.delivery.dkim",
        "dkim_app",
        "DKIM keys: generate a key pair and print its DNS record",
    ),
    "wechat": (
        "newsletter.wechat.cli",
        "wechat_app",
        "WeChat Official Account / 公众号: check, preview, publish, stats",
    ),
    "users": ("newsletter.web.console.cli", "users_app", "Console users and personal API tokens"),
    "tracking": ("newsletter.tracking.cli", "stats_app", "Open/click statistics / 阅读统计"),
    "relays": ("newsletter.delivery.relay_cli", "relays_app", "Relays: list, status / 发信服务器"),
    "warmup": ("newsletter.delivery.relay_cli", "warmup_app", "Warm-up of sending domains / 预热"),
}


class _LazyCommand(TyperCommand):
    """Stands in for a sub-command group until it is invoked (or its commands are listed)."""

    def __init__(self, name: str, module: str, attr: str, help_text: str) -> None:
        super().__init__(name, help=help_text, short_help=help_text)
        self._target = (module, attr)
        self._loaded: click.Command | None = None

    def load(self) -> click.Command:
        if self._loaded is None:
            import importlib

            module, attr = self._target
            sub = getattr(importlib.import_module(module), attr)
            loaded = typer.main.get_group(sub)  # a sub-group: no completion options
            loaded.name = self.name
            self._loaded = loaded
        return self._loaded

    @property
    def commands(self) -> dict[str, click.Command]:
        return getattr(self.load(), "commands", {})

    def make_context(  # type: ignore[override]
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self.load().make_context(info_name, args, parent, **extra)


class _LazyGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY_GROUPS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_GROUPS:
            return _LazyCommand(cmd_name, *_LAZY_GROUPS[cmd_name])
        return super().get_command(ctx, cmd_name)


app.info.cls = _LazyGroup


console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _fail(exc: Exception) -> None:
    from .clierrors import describe

    code, line = describe(exc)
    sys.stderr.write(f"error: {line}\n")  # one line, never wrapped to the terminal width
    raise typer.Exit(code)


def _emit(data: Any, as_json: bool) -> bool:
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    return as_json


# -- db ----------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations (idempotent)."""
    from .db import current_revision, upgrade

    upgrade()
    console.print(f"database at revision [bold]{current_revision()}[/]")


@db_app.command("current")
def db_current() -> None:
    """Print the current migration revision."""
    from .db import current_revision

    console.print(current_revision() or "(empty)")


# -- issues ------------------------------------------------------------------


@issue_app.command("add")
def issue_add(
    file: Path,
    publication: Annotated[str | None, typer.Option(help="publication slug")] = None,
    by: Annotated[
        str | None,
        typer.Option(help="who uploads or edits (recorded; the four-eyes rule uses it)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store FILE as a draft issue (or update the draft with the same number)."""
    from .db import session_scope
    from .issues import create_issue

    try:
        with session_scope() as s:
            issue, warnings = create_issue(s, file, publication_slug=publication, actor=by)
            out = {
                "id": issue.id,
                "number": issue.number,
                "title": issue.title,
                "status": issue.status,
                "warnings": warnings,
            }
    except NewsletterError as exc:
        _fail(exc)
    if not _emit(out, as_json):
        for w in warnings:
            err.print(f"[yellow]warning:[/] {w}")
        console.print(
            f"issue id {out['id']} · 第{out['number']}期 {out['title']} · {out['status']}"
        )


@issue_app.command("render")
def issue_render(
    file: Path,
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory")] = Path("var/render"),
    variant: Annotated[str, typer.Option(help="zh-Hans or zh-Hant")] = "zh-Hans",
    as_json: JsonOpt = False,
) -> None:
    """Render FILE to email.html, email.txt, wechat-N.html, web.html and report.json.

    Each channel renders on its own: one that fails is reported (and the exit
    status is 1) while the others are still written.
    """
    from .content.parser import load_issue
    from .content.variants import to_variant
    from .render import CHANNELS, render_channels, write_outputs

    try:
        doc, warnings = load_issue(file)
        doc = to_variant(doc, variant)
        result = render_channels(doc, _ctx_for_file(doc))
        write_outputs(result, out)
    except (NewsletterError, OSError) as exc:
        _fail(exc)
    report = result.report()
    report["input_warnings"] = warnings
    if not _emit(report, as_json):
        for w in warnings:
            err.print(f"[yellow]warning:[/] {w}")
        for ch in CHANNELS:
            if ch in result.errors:
                err.print(f"{ch}: error: {result.errors[ch]}", markup=False, soft_wrap=True)
            else:
                console.print(f"{ch}: ok", markup=False)
        mode = f"  (email mode: {result.email.mode}; {result.email.reason})" if result.email else ""
        console.print(f"wrote {out}/{mode}", markup=False)
    if result.errors:
        raise typer.Exit(1)


def _ctx_for_file(doc: Any) -> Any:
    from .config import get_settings
    from .render.context import RenderContext

    cfg = get_settings()
    return RenderContext(
        base_url=cfg.base_url,
        publication_name=doc.publication,
        publication_slug="weekly",
        postal_address=cfg.postal_address,
        sender_name=cfg.from_name,
        email_budget_bytes=cfg.html_budget_bytes,
    )


@issue_app.command("lint")
def issue_lint(file: Path, as_json: JsonOpt = False) -> None:
    """Check structure, numbering, metadata, links, images and every channel's size budget.

    Exits 1 when there are errors.
    """
    from .content.parser import decode_source
    from .errors import IssueFormatError
    from .issuelint import full_lint

    try:
        text, warnings = decode_source(file.read_bytes(), path=str(file))
    except (IssueFormatError, OSError) as exc:
        _fail(exc)
    messages, budgets = full_lint(text, str(file), _ctx_for_file)
    infos = [m for lvl, _c, m in budgets if lvl == "info"]
    data = [
        {"level": m.level, "line": m.line, "code": m.code, "message": m.message} for m in messages
    ]
    errors = sum(1 for m in messages if m.level == "error")
    if not _emit(
        {
            "file": str(file),
            "messages": data,
            "info": infos,
            "errors": errors,
            "decode_warnings": warnings,
        },
        as_json,
    ):
        for w in warnings:
            err.print(f"[yellow]warning:[/] {w}")
        for m in messages:
            color = "red" if m.level == "error" else "yellow"
            where = f"{file}:{m.line}" if m.line else str(file)
            console.print(f"[{color}]{m.level}[/] {where} [{m.code}] {m.message}")
        for i in infos:
            console.print(f"[dim]info[/] {i}")
        console.print(f"{errors} error(s), {len(messages) - errors} warning(s)")
    if errors:
        raise typer.Exit(1)


@issue_app.command("import-text")
def issue_import_text(
    file: Path,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Markdown file to write")] = None,
    number: Annotated[int | None, typer.Option(help="issue number if the text lacks one")] = None,
    outline: Annotated[
        bool, typer.Option("--outline", help="print every line with its number and class")
    ] = False,
    hint: Annotated[
        list[str] | None,
        typer.Option("--hint", help="LINE=CLASS correction, e.g. 42=item (kept in the output)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert plain text copied from a web page or Word into the issue source format.

    Hints given with --hint, and those already kept in the output file's
    import_hints front matter, are applied and written back.
    """
    from .content.textimport import import_issue_text

    try:
        report, lines = import_issue_text(file, out, number=number, hints=hint or [])
    except NewsletterError as exc:
        # one line, never wrapped: editors and scripts grep it
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if _emit(report | ({"outline": lines} if outline else {}), as_json):
        return
    if outline:
        for n, cls, txt in lines:
            console.print(f"{n:>5} {cls:<9} {txt}", markup=False, highlight=False)
    console.print(f"wrote {report['written']}", markup=False)
    for line, txt in report["chrome"]:
        console.print(f"ignored page chrome line {line}: {txt}", markup=False, style="dim")
    for line, txt in report["contents"]:
        console.print(f"dropped contents list line {line}: {txt}", markup=False, style="dim")
    for w in report["warnings"]:
        err.print(f"warning: {w}", markup=False, style="yellow")


@issue_app.command("from-feeds")
def issue_from_feeds(
    feeds: Annotated[
        Path | None, typer.Option(help="feeds file (YAML); default NEWSLETTER_FEEDS_FILE")
    ] = None,
    publication: Annotated[str | None, typer.Option(help="publication slug")] = None,
    since: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD; default: when the newest issue was stored")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Markdown file to write")] = None,
    add: Annotated[bool, typer.Option("--add/--no-add", help="store it as a draft issue")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Make a draft issue of what the source feeds published since the last issue."""
    import datetime as dt

    from sqlalchemy import select

    from .config import get_settings
    from .db import session_scope
    from .errors import ConfigError
    from .feeds import FEEDS_ACTOR, draft_from_feeds, load_config
    from .issues import create_issue
    from .models import Publication

    try:
        path = feeds or (Path(get_settings().feeds_file) if get_settings().feeds_file else None)
        if path is None:
            raise ConfigError("未配置订阅源：用 --feeds 或 NEWSLETTER_FEEDS_FILE / no feeds file: "
                              "give --feeds or set NEWSLETTER_FEEDS_FILE")
        cfg = load_config(path)
        try:
            start = dt.date.fromisoformat(since) if since else None
        except ValueError:
            raise ConfigError(f"--since 应为 YYYY-MM-DD：{(since or '')[:40]} / --since must be "
                              "YYYY-MM-DD") from None
        with session_scope() as s:
            pubs = list(s.scalars(select(Publication).order_by(Publication.id)))
            pub = next((p for p in pubs if p.slug == publication), None) if publication else (
                pubs[0] if len(pubs) == 1 else None)
            if pub is None:
                raise ConfigError("请用 --publication 指定刊物 / name the publication with "
                                  f"--publication ({', '.join(p.slug for p in pubs) or '-'})")
            draft = draft_from_feeds(s, pub, cfg, since=start)
            target = out or get_settings().var_dir / "drafts" / f"{pub.slug}-{draft.number}.md"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(draft.markdown, encoding="utf-8")
            result: dict[str, Any] = {
                "file": str(target), "number": draft.number, "items": draft.items,
                "skipped_old": draft.skipped_old, "skipped_known": draft.skipped_known,
                "skipped_duplicate": draft.skipped_duplicate, "problems": draft.problems,
            }
            if add and draft.items:
                issue, warnings = create_issue(s, target, publication_slug=pub.slug,
                                               actor=FEEDS_ACTOR)
                result.update(issue_id=issue.id, status=issue.status, warnings=warnings)
    except NewsletterError as exc:
        _fail(exc)
    if not _emit(result, as_json):
        for p in result["problems"]:
            err.print(f"[yellow]warning:[/] {p}")
        console.print(
            f"第{result['number']}期草稿 / draft {result['number']}: {result['items']} 条新内容 "
            f"(旧 {result['skipped_old']}, 已收录 {result['skipped_known']}, 重复 "
            f"{result['skipped_duplicate']}) → {Path(result['file']).name}"
            + (f" · issue id {result['issue_id']}" if "issue_id" in result else "")
        )


@issue_app.command("preview")
def issue_preview(
    file: Path,
    port: Annotated[int, typer.Option(help="port of the local preview server")] = 8765,
    variant: str = "zh-Hans",
    screenshots: Annotated[Path | None, typer.Option(help="write PNGs here and exit")] = None,
) -> None:
    """Serve a local page with the email (desktop, phone), the WeChat articles and the web page."""
    from .content.parser import load_issue
    from .content.variants import to_variant
    from .render import render_all
    from .render.preview import preview_html
    from .render.preview import screenshots as take

    try:
        doc, _w = load_issue(file)
        result = render_all(to_variant(doc, variant), _ctx_for_file(doc))
    except NewsletterError as exc:
        _fail(exc)
    if screenshots is not None:
        for p in take(result, screenshots):
            console.print(f"wrote {p}")
        return
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    page = preview_html(result, doc.title)
    web = FastAPI()
    web.get("/", response_class=HTMLResponse)(lambda: page)
    console.print(f"preview at http://127.0.0.1:{port}/  (Ctrl-C to stop)")
    uvicorn.run(web, host="127.0.0.1", port=port, log_level="warning")


def _issue_cmd(ref: str, action: str, actor: str, as_json: bool) -> None:
    from .db import session_scope
    from .issues import get_issue
    from .schedule import approve, submit_for_review

    try:
        with session_scope() as s:
            issue = get_issue(s, ref)
            if action == "approve":
                approve(s, issue, actor)
            else:
                submit_for_review(s, issue, actor)
            out = {
                "id": issue.id,
                "number": issue.number,
                "status": issue.status,
                "approved_by": issue.approved_by,
                "approved_at": issue.approved_at,
            }
    except NewsletterError as exc:
        _fail(exc)
    if not _emit(out, as_json):
        console.print(f"issue {out['id']} (第{out['number']}期): {out['status']}")


@issue_app.command("review")
def issue_review(ref: str, by: str = "cli", as_json: JsonOpt = False) -> None:
    """Move a draft issue (id or #number) to review."""
    _issue_cmd(ref, "review", by, as_json)


@issue_app.command("approve")
def issue_approve(
    ref: str,
    by: Annotated[str, typer.Option(help="who approves (recorded)")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Approve an issue (id or #number); only approved issues can be scheduled."""
    _issue_cmd(ref, "approve", by, as_json)


@issue_app.command("list")
def issue_list(as_json: JsonOpt = False) -> None:
    """List issues with their status."""
    from sqlalchemy import select

    from .db import session_scope
    from .models import Issue

    with session_scope() as s:
        rows = [
            {
                "id": i.id,
                "number": i.number,
                "title": i.title,
                "status": i.status,
                "approved_by": i.approved_by,
            }
            for i in s.scalars(select(Issue).order_by(Issue.number.desc()))
        ]
    if _emit(rows, as_json):
        return
    t = Table("id", "no.", "title", "status", "approved by")
    for r in rows:
        t.add_row(
            str(r["id"]),
            str(r["number"]),
            str(r["title"]),
            str(r["status"]),
            str(r["approved_by"] or ""),
        )
    console.print(t)


# -- subscribers -------------------------------------------------------------


@subs_app.command("import")
def subscribers_import(
    file: Path,
    list_name: Annotated[str, typer.Option("--list", help="list name (created if missing)")],
    resubscribe: Annotated[
        bool, typer.Option(help="re-subscribe suppressed/unsubscribed people (audited)")
    ] = False,
    report: Annotated[Path | None, typer.Option(help="error report CSV path")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a CSV or XLSX file of subscribers into a list."""
    from .audience.importer import import_file

    try:
        summary = import_file(file, list_name, resubscribe=resubscribe, report_path=report)
    except NewsletterError as exc:
        _fail(exc)
    data = summary.as_dict()
    if _emit(data, as_json):
        return
    t = Table(title=f"import {file.name} → {list_name} ({summary.encoding or 'xlsx'})")
    for k in (
        "rows",
        "new",
        "updated",
        "unchanged",
        "invalid",
        "duplicate",
        "suppressed",
        "resubscribed",
    ):
        t.add_column(k, justify="right")
    t.add_row(
        *(
            str(data[k])
            for k in (
                "rows",
                "new",
                "updated",
                "unchanged",
                "invalid",
                "duplicate",
                "suppressed",
                "resubscribed",
            )
        )
    )
    console.print(t)
    if summary.report_path:
        console.print(f"row errors written to {summary.report_path}")


@subs_app.command("export")
def subscribers_export(
    list_name: Annotated[
        str | None, typer.Option("--list", help="default: every subscriber")
    ] = None,
    segment: Annotated[str | None, typer.Option(help="saved segment name or a JSON filter")] = None,
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("subscribers-export.csv"),
) -> None:
    """Export a list or segment to CSV (UTF-8 with BOM for Excel), streamed."""
    from .audience.export import iter_csv
    from .audience.service import audit, get_list
    from .db import session_scope

    try:
        with session_scope() as s:
            list_id = get_list(s, list_name).id if list_name else None
            defn = _segment_definition(s, segment) if segment else None
    except NewsletterError as exc:
        _fail(exc)
    tmp = out.with_suffix(out.suffix + ".tmp")
    n = 0
    try:  # a temporary file, renamed when complete: never a half-written export
        with tmp.open("wb") as fh:
            for chunk in iter_csv(list_id, defn):
                fh.write(chunk)
                n += 1
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    with session_scope() as s:  # audited once the file is there
        audit(s, "cli", "subscribers.export", list_name or "*", segment=segment or "")
    console.print(f"wrote {n - 1} rows to {out}")


def _segment_definition(session: Any, ref: str) -> Any:
    from sqlalchemy import select

    from .audience.segments import SegmentError, validate
    from .models import Segment

    if ref.lstrip().startswith("{"):
        try:
            defn = json.loads(ref)
        except json.JSONDecodeError as exc:
            raise SegmentError(f"segment is not valid JSON: {exc}") from exc
    else:
        seg = session.scalar(select(Segment).where(Segment.name == ref))
        if seg is None:
            raise SegmentError(f"segment {ref!r} does not exist")
        defn = seg.definition
    validate(defn)
    return defn


@subs_app.command("add")
def subscribers_add(
    email_addr: Annotated[str, typer.Argument(metavar="EMAIL")],
    list_name: Annotated[str, typer.Option("--list")],
    name: str = "",
    variant: str = "zh-Hans",
) -> None:
    """Add one subscriber to a list (active: the operator vouches for consent)."""
    from .audience.addresses import normalise
    from .audience.service import audit, get_or_create_list, is_suppressed
    from .db import session_scope
    from .models import Subscriber, Subscription

    try:
        addr = normalise(email_addr)
        with session_scope() as s:
            if is_suppressed(s, addr):
                raise NewsletterError(f"{addr} is suppressed; remove it from suppressions first")
            from sqlalchemy import select

            sub = s.scalar(select(Subscriber).where(Subscriber.email == addr))
            if sub is None:
                sub = Subscriber(email=addr, name=name, variant=variant, source="cli")
                s.add(sub)
                s.flush()
            ml = get_or_create_list(s, list_name)
            row = s.get(Subscription, (sub.id, ml.id))
            if row is None:
                s.add(Subscription(subscriber_id=sub.id, list_id=ml.id, status="active"))
            else:
                row.status = "active"
            audit(s, "cli", "subscribers.add", addr, list=list_name)
    except NewsletterError as exc:
        _fail(exc)
    console.print(f"{addr} subscribed to {list_name}")


@subs_app.command("remove")
def subscribers_remove(
    email_addr: Annotated[str, typer.Argument(metavar="EMAIL")],
    list_name: Annotated[str | None, typer.Option("--list", help="default: every list")] = None,
    erase: Annotated[bool, typer.Option(help="erase personal data (keeps a hash)")] = False,
) -> None:
    """Unsubscribe someone from a list or from everything; optionally erase their data."""
    from sqlalchemy import select

    from .audience.addresses import normalise
    from .audience.service import erase_subscriber, get_list, unsubscribe
    from .db import session_scope
    from .models import Subscriber

    try:
        addr = normalise(email_addr)
        with session_scope() as s:
            sub = s.scalar(select(Subscriber).where(Subscriber.email == addr))
            if sub is None:
                raise NewsletterError(f"{addr} is not a subscriber")
            list_id = get_list(s, list_name).id if list_name else None
            unsubscribe(s, sub.id, list_id, reason="operator")
            if erase:
                erase_subscriber(s, sub.id, actor="cli")
    except NewsletterError as exc:
        _fail(exc)
    console.print(f"{addr} removed" + (" and erased" if erase else ""))


@subs_app.command("show")
def subscribers_show(email_addr: Annotated[str, typer.Argument(metavar="EMAIL")]) -> None:
    """Show everything stored about one subscriber (JSON)."""
    from sqlalchemy import select

    from .audience.addresses import normalise
    from .audience.service import export_personal_data
    from .db import session_scope
    from .models import Subscriber

    try:
        addr = normalise(email_addr)
        with session_scope() as s:
            sid = s.scalar(select(Subscriber.id).where(Subscriber.email == addr))
            if sid is None:
                raise NewsletterError(f"{addr} is not a subscriber")
            data = export_personal_data(s, sid)
    except NewsletterError as exc:
        _fail(exc)
    _emit(data, True)


@subs_app.command("search")
def subscribers_search(query: str, limit: int = 50, as_json: JsonOpt = False) -> None:
    """Find subscribers whose email or name contains QUERY."""
    from sqlalchemy import or_, select

    from .db import session_scope
    from .models import Subscriber

    like = f"%{query.strip().lower()}%"
    with session_scope() as s:
        rows = [
            {"email": e, "name": n, "variant": v, "status": st}
            for e, n, v, st in s.execute(
                select(Subscriber.email, Subscriber.name, Subscriber.variant, Subscriber.status)
                .where(or_(Subscriber.email.like(like), Subscriber.name.like(f"%{query}%")))
                .order_by(Subscriber.id)
                .limit(limit)
            )
        ]
    if _emit(rows, as_json):
        return
    t = Table("email", "name", "variant", "status")
    for r in rows:
        t.add_row(r["email"], r["name"], r["variant"], r["status"])
    console.print(t)


@supp_app.command("add")
def suppressions_add(
    email_addr: Annotated[str, typer.Argument(metavar="EMAIL")],
    reason: Annotated[str, typer.Option(help="manual, complaint, hard_bounce")] = "manual",
    note: str = "",
) -> None:
    """Block an address from every send."""
    from .audience.service import audit, suppress
    from .db import session_scope

    try:
        with session_scope() as s:
            added = suppress(s, email_addr, reason, note=note)
            audit(s, "cli", "suppressions.add", email_addr, reason=reason)
    except NewsletterError as exc:
        _fail(exc)
    console.print("suppressed" if added else "already suppressed")


@supp_app.command("remove")
def suppressions_remove(email_addr: Annotated[str, typer.Argument(metavar="EMAIL")]) -> None:
    """Lift a suppression (audited). The person is not resubscribed automatically."""
    from .audience.service import audit, unsuppress
    from .db import session_scope

    try:
        with session_scope() as s:
            removed = unsuppress(s, email_addr)
            audit(s, "cli", "suppressions.remove", email_addr)
    except NewsletterError as exc:
        _fail(exc)
    console.print("removed" if removed else "was not suppressed")


@supp_app.command("list")
def suppressions_list(limit: int = 100, as_json: JsonOpt = False) -> None:
    """List suppressed addresses, newest first."""
    from sqlalchemy import select

    from .db import session_scope
    from .models import Suppression

    with session_scope() as s:
        rows = [
            {"email": x.email, "reason": x.reason, "note": x.note, "at": x.created_at}
            for x in s.scalars(select(Suppression).order_by(Suppression.id.desc()).limit(limit))
        ]
    if _emit(rows, as_json):
        return
    t = Table("email", "reason", "when", "note")
    for r in rows:
        t.add_row(str(r["email"]), str(r["reason"]), str(r["at"])[:19], str(r["note"])[:60])
    console.print(t)


@seg_app.command("create")
def segments_create(
    name: str, definition: Annotated[str, typer.Argument(help="JSON filter")]
) -> None:
    """Save a segment, e.g. '{"all":[{"list":"周报订阅"},{"opened_in_last_sends":4}]}'."""
    from .db import session_scope
    from .models import Segment

    try:
        with session_scope() as s:
            defn = _segment_definition(s, definition)
            s.add(Segment(name=name, definition=defn))
    except NewsletterError as exc:
        _fail(exc)
    console.print(f"segment {name} saved")


@seg_app.command("count")
def segments_count(
    segment: Annotated[str, typer.Argument(help="saved name or JSON filter")],
    list_name: Annotated[str | None, typer.Option("--list")] = None,
) -> None:
    """How many active subscribers match (evaluated in the database)."""
    from .audience.segments import count
    from .audience.service import get_list
    from .db import session_scope

    try:
        with session_scope() as s:
            list_id = get_list(s, list_name).id if list_name else None
            n = count(s, _segment_definition(s, segment), list_id)
    except NewsletterError as exc:
        _fail(exc)
    console.print(str(n))


@seg_app.command("list")
def segments_list(as_json: JsonOpt = False) -> None:
    """List saved segments."""
    from sqlalchemy import select

    from .db import session_scope
    from .models import Segment

    with session_scope() as s:
        rows = [
            {"name": g.name, "definition": g.definition}
            for g in s.scalars(select(Segment).order_by(Segment.name))
        ]
    if _emit(rows, as_json):
        return
    for r in rows:
        console.print(f"{r['name']}: {json.dumps(r['definition'], ensure_ascii=False)}")


# -- lists ---------------------------------------------------------------------


@lists_app.command("create")
def lists_create(name: str, description: str = "") -> None:
    """Create a list."""
    from .audience.service import get_or_create_list
    from .db import session_scope

    with session_scope() as s:
        ml = get_or_create_list(s, name, description)
        console.print(f"list {ml.id}: {ml.name}")


@lists_app.command("list")
def lists_list(as_json: JsonOpt = False) -> None:
    """Show lists with their member counts."""
    from sqlalchemy import func, select

    from .db import session_scope
    from .models import MailingList, Subscription

    with session_scope() as s:
        rows = [
            {"id": i, "name": n, "active": a or 0}
            for i, n, a in s.execute(
                select(MailingList.id, MailingList.name, func.count(Subscription.subscriber_id))
                .join(
                    Subscription,
                    (Subscription.list_id == MailingList.id) & (Subscription.status == "active"),
                    isouter=True,
                )
                .group_by(MailingList.id, MailingList.name)
            )
        ]
    if _emit(rows, as_json):
        return
    t = Table("id", "name", "active")
    for r in rows:
        t.add_row(str(r["id"]), str(r["name"]), str(r["active"]))
    console.print(t)


@lists_app.command("show")
def lists_show(name: str, as_json: JsonOpt = False) -> None:
    """A list's members by subscription status."""
    from sqlalchemy import func, select

    from .audience.service import get_list
    from .db import session_scope
    from .models import Subscription

    try:
        with session_scope() as s:
            ml = get_list(s, name)
            counts = dict(
                s.execute(
                    select(Subscription.status, func.count())
                    .where(Subscription.list_id == ml.id)
                    .group_by(Subscription.status)
                ).all()
            )
            data = {
                "id": ml.id,
                "name": ml.name,
                "description": ml.description,
                **{k: counts.get(k, 0) for k in ("active", "unconfirmed", "unsubscribed")},
            }
    except NewsletterError as exc:
        _fail(exc)
    if not _emit(data, as_json):
        console.print(data)


# -- sends -------------------------------------------------------------------


@send_app.command("create")
def send_create(
    issue: Annotated[str, typer.Argument(help="issue id, or #number")],
    list_name: Annotated[str, typer.Option("--list")],
    variant: Annotated[str, typer.Option(help="preference, zh-Hans or zh-Hant")] = "preference",
    segment: Annotated[str | None, typer.Option(help="saved segment narrowing the list")] = None,
    resend: Annotated[
        str | None,
        typer.Option(
            "--resend",
            metavar="REASON",
            help="send again to readers who already received this issue (audited reason)",
        ),
    ] = None,
    by: str = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Create a draft email send of ISSUE to a list (optionally narrowed by a segment).

    Readers who already received the issue (or are receiving it from another
    send) are skipped when the send is planned, unless --resend gives a reason.
    """
    from sqlalchemy import select

    from .audience.service import audit, get_list
    from .db import session_scope
    from .delivery.sends import other_sends
    from .issues import get_issue
    from .models import Segment, Send

    try:
        with session_scope() as s:
            iss = get_issue(s, issue)
            ml = get_list(s, list_name)
            seg_id = None
            if segment:
                seg_id = s.scalar(select(Segment.id).where(Segment.name == segment))
                if seg_id is None:
                    raise NewsletterError(f"segment {segment!r} does not exist")
            send = Send(
                publication_id=iss.publication_id,
                issue_id=iss.id,
                list_id=ml.id,
                segment_id=seg_id,
                channel="email",
                variant_rule=variant,
                state="draft",
                created_by=by,
            )
            if resend is not None:
                reason = " ".join(resend.split())
                if not reason:
                    raise NewsletterError("--resend needs a reason / 重发须写明原因")
                send.resend_reason = reason[:500]
            s.add(send)
            s.flush()
            others = other_sends(s, send)
            if resend is not None:
                audit(s, by, "send.resend", f"send:{send.id}", issue=iss.number,
                      reason=send.resend_reason, others=[i for i, _ in others])
            out: dict[str, Any] = {
                "send_id": send.id, "issue": iss.number, "list": ml.name, "state": send.state,
                "other_sends": [{"id": i, "state": st} for i, st in others],
                "resend": send.resend_reason,
            }
    except NewsletterError as exc:
        _fail(exc)
    if not _emit(out, as_json):
        console.print(f"send {out['send_id']} created (draft)")
        if out["other_sends"] and not resend:
            listed = ", ".join(f"{o['id']} ({o['state']})" for o in out["other_sends"])
            console.print(
                f"[yellow]issue #{out['issue']} also has send(s) {listed}: readers who "
                "received it are skipped; --resend REASON sends to them again / "
                "已收到本期的读者将被跳过[/]"
            )


@send_app.command("schedule")
def send_schedule(
    issue: Annotated[str, typer.Argument(help="issue id, or #number")],
    list_name: Annotated[
        str | None, typer.Option("--list", help="default: the publication's")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="ISO time with offset; default: next weekly slot")
    ] = None,
    variant: Annotated[str, typer.Option(help="preference, zh-Hans or zh-Hant")] = "preference",
    by: str = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Schedule an approved issue at the next weekly slot, or once at --at."""
    import datetime as dt

    from .audience.service import get_list
    from .db import session_scope
    from .issues import get_issue
    from .models import Publication
    from .schedule import ScheduleError, schedule_send

    try:
        when = None
        if at:
            try:
                when = dt.datetime.fromisoformat(at)
            except ValueError:
                raise ScheduleError(
                    f"bad time {at!r}; expected e.g. 2026-11-30T09:00+08:00"
                ) from None
        with session_scope() as s:
            iss = get_issue(s, issue)
            pub = s.get(Publication, iss.publication_id)
            assert pub is not None
            if list_name:
                list_id = get_list(s, list_name).id
            elif pub.default_list_id:
                list_id = pub.default_list_id
            else:
                raise ScheduleError("no --list given and the publication has no default list")
            send = schedule_send(s, iss, list_id=list_id, at=when, variant_rule=variant, actor=by)
            out = {"send_id": send.id, "slot": send.slot, "scheduled_at": send.scheduled_at}
    except NewsletterError as exc:
        _fail(exc)
    if not _emit(out, as_json):
        console.print(f"send {out['send_id']} scheduled for {out['slot']}")


@send_app.command("list")
def send_list(as_json: JsonOpt = False) -> None:
    """List sends with their state and progress."""
    from sqlalchemy import func, select

    from .db import session_scope
    from .models import Delivery, Issue, Send

    with session_scope() as s:
        sent = dict(
            s.execute(
                select(Delivery.send_id, func.count())
                .where(Delivery.state == "sent")
                .group_by(Delivery.send_id)
            ).all()
        )
        rows = [
            {
                "id": sd.id,
                "issue": num,
                "channel": sd.channel,
                "state": sd.state,
                "slot": sd.slot,
                "planned": sd.planned_count,
                "sent": sent.get(sd.id, 0),
            }
            for sd, num in s.execute(
                select(Send, Issue.number).join(Issue).order_by(Send.id.desc())
            )
        ]
    if _emit(rows, as_json):
        return
    t = Table("id", "issue", "channel", "state", "slot", "sent/planned")
    for r in rows:
        t.add_row(
            str(r["id"]),
            str(r["issue"]),
            str(r["channel"]),
            str(r["state"]),
            str(r["slot"] or ""),
            f"{r['sent']}/{r['planned']}",
        )
    console.print(t)


@send_app.command("test")
def send_test(
    issue: Annotated[str, typer.Argument(help="issue id, or #number")],
    to: Annotated[list[str], typer.Option("--to", help="recipient (repeatable)")],
    variant: Annotated[str, typer.Option(help="zh-Hans, zh-Hant or both")] = "zh-Hans",
    as_json: JsonOpt = False,
) -> None:
    """Send the real rendered message to test addresses, outside the ledger and the stats."""
    from .delivery.testsend import send_test as do_test

    try:
        results = do_test(issue, to, variant)
    except NewsletterError as exc:
        _fail(exc)
    if not _emit(results, as_json):
        for r in results:
            console.print(f"{r['variant']} → {r['to']}: {r['state']} {r['reply']}")
    if any(r["state"] != "sent" for r in results):
        raise typer.Exit(1)


@send_app.command("start")
def send_start(
    send_id: int,
    wait: Annotated[bool, typer.Option(help="embedded mode: run to the end here")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Start a send now: plan deliveries, then send (in-process, or through Celery workers)."""
    from .config import get_settings
    from .delivery.run import channel_of, start, start_channel

    try:
        if get_settings().embedded:
            state = start_channel(send_id) if wait else "sending"
        else:
            from .dispatch import dispatcher

            d = dispatcher()
            d.check()  # a broker that is down changes nothing
            if channel_of(send_id) == "email":
                start(send_id)  # plan here: a send that cannot start fails now, loudly
            d.start_send(send_id)
            state = "queued to workers"
    except NewsletterError as exc:
        _fail(exc)
    _show_status(send_id, as_json, note=state)
    _exit_if_failed(send_id)


def _exit_if_failed(send_id: int) -> None:
    from .db import session_scope
    from .models import Send

    with session_scope() as s:
        send = s.get(Send, send_id)
        failed = send is not None and send.state == "failed"
        reason = send.error if send is not None else None
    if failed:
        err.print(f"[bold red]send {send_id} failed / 发送失败:[/] {reason}")
        raise typer.Exit(2)


def _control(send_id: int, action: str, as_json: bool) -> None:
    from .db import session_scope
    from .delivery.sends import transition

    try:
        with session_scope() as s:
            changed = transition(s, send_id, action)
    except NewsletterError as exc:
        _fail(exc)
    if action == "resume":
        from .config import get_settings

        if not get_settings().embedded:
            from .dispatch import dispatcher

            try:
                dispatcher().run_batches(send_id, get_settings().send_parallelism)
            except NewsletterError as exc:
                _fail(exc)
    _show_status(send_id, as_json, note=f"{action}{'' if changed else ' (no change)'}")


@send_app.command("pause")
def send_pause(send_id: int, as_json: JsonOpt = False) -> None:
    """Pause a send; workers stop within seconds."""
    _control(send_id, "pause", as_json)


@send_app.command("resume")
def send_resume(send_id: int, as_json: JsonOpt = False) -> None:
    """Resume a paused send."""
    _control(send_id, "resume", as_json)


@send_app.command("cancel")
def send_cancel(send_id: int, as_json: JsonOpt = False) -> None:
    """Cancel a send; deliveries not yet sent stay unsent."""
    _control(send_id, "cancel", as_json)


@send_app.command("subjects")
def send_subjects(
    send_id: int,
    subjects: Annotated[list[str], typer.Argument(help="2–4 subjects; the first is the default")],
    share: Annotated[int, typer.Option(help="Test share, percent of the audience")] = 20,
    wait: Annotated[int, typer.Option(help="Minutes before the winner is decided")] = 240,
    metric: Annotated[str, typer.Option(help="opens or clicks (human only)")] = "opens",
    as_json: JsonOpt = False,
) -> None:
    """Make a draft send a subject test (winner by human opens or clicks)."""
    from .db import session_scope
    from .delivery.subjects import configure

    try:
        with session_scope() as s:
            configure(s, send_id, subjects, share=share, wait_seconds=wait * 60, metric=metric)
    except NewsletterError as exc:
        _fail(exc)
    data = {"send": send_id, "subjects": subjects, "share": share, "wait_minutes": wait,
            "metric": metric}
    if not _emit(data, as_json):
        typer.echo(f"send {send_id}: subject test of {len(subjects)} subjects, {share}% test "
                   f"share, decided after {wait} min by human {metric}")


@send_app.command("decide")
def send_decide(send_id: int, now: bool = False, as_json: JsonOpt = False) -> None:
    """Decide a subject test (--now: before its time) and release the remainder."""
    from .db import session_scope
    from .delivery.subjects import decide

    try:
        with session_scope() as s:
            report = decide(s, send_id, force=now)
    except NewsletterError as exc:
        _fail(exc)
    if report is None:
        sys.stderr.write(f"error: send {send_id} has no subject test due yet "
                         "/ 该发送没有到期的主题测试\n")
        raise typer.Exit(1)
    if not _emit(report, as_json):
        for v in report["variants"]:
            typer.echo(f"  [{v['index'] + 1}] {v['subject']}: sent {v['sent']}, human opens "
                       f"{v['opens_human']} ({v['open_rate']:.1%}), machine opens "
                       f"{v['opens_machine']}, human clicks {v['clicks_human']}")
        typer.echo(f"winner: [{report['winner'] + 1}] (p = {report['p_value']}); {report['note']}")
    from .config import get_settings

    if get_settings().embedded:
        from .delivery.run import drive_inline

        drive_inline(send_id)  # the remainder goes out now, in this process
    else:
        from .dispatch import dispatcher

        dispatcher().run_batches(send_id, get_settings().send_parallelism)


@send_app.command("status")
def send_status(
    send_id: int,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="live progress bar until done")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a send's state and delivery counts (--watch: a live progress bar with the rate)."""
    if watch and not as_json:
        _watch(send_id)
    _show_status(send_id, as_json)


def _watch(send_id: int, every: float = 1.0) -> None:
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .db import session_scope
    from .delivery.sends import state_counts
    from .models import Send

    terminal = ("finished", "cancelled", "failed", "paused")
    with Progress(
        TextColumn("[bold]send {task.fields[send]}[/] {task.fields[state]}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TextColumn("{task.fields[rate]:,.0f} msg/s"),
        TextColumn("bounced {task.fields[bounced]} · deferred {task.fields[deferred]} "
                   "· skipped {task.fields[skipped]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("send", total=1, send=send_id, state="", rate=0.0, bounced=0,
                                 deferred=0, skipped=0)
        last: tuple[float, int] | None = None
        while True:
            with session_scope() as s:
                send = s.get(Send, send_id)
                if send is None:
                    _fail(NewsletterError(f"send {send_id} does not exist"))
                    return
                state, counts = send.state, state_counts(s, send_id)
            total = max(sum(counts.values()), 1)
            done = counts["sent"] + counts["bounced"] + counts["failed"] + counts["skipped"]
            now = time.monotonic()
            rate = (done - last[1]) / (now - last[0]) if last and now > last[0] else 0.0
            last = (now, done)
            progress.update(task, total=total, completed=done, state=state, rate=rate,
                            bounced=counts["bounced"], deferred=counts["deferred"],
                            skipped=counts["skipped"])
            if state in terminal or (state == "sending" and done >= total):
                break
            time.sleep(every)


def _show_status(send_id: int, as_json: bool, note: str | None = None) -> None:
    from sqlalchemy import func, select

    from .db import session_scope
    from .delivery.relay_cli import print_relay_counts
    from .delivery.relays import relay_counts
    from .delivery.sends import state_counts
    from .models import Delivery, Send

    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None:
            _fail(NewsletterError(f"send {send_id} does not exist"))
            return
        channel = send.channel
        counts = state_counts(s, send_id)
    if channel == "wechat":
        from .wechat.publisher import status as wechat_status

        data_wx = wechat_status(send_id)
        if note:
            data_wx["note"] = note
        if not _emit(data_wx, as_json):
            console.print(data_wx)
        return
    with session_scope() as s:
        send = s.get(Send, send_id)
        assert send is not None
        at_risk = s.scalar(
            select(func.count()).where(Delivery.send_id == send_id, Delivery.at_risk.is_(True))
        )
        data = {
            "send_id": send_id,
            "state": send.state,
            "planned": send.planned_count,
            "excluded": send.excluded_count,
            "already_received": send.already_received,
            "at_risk": int(at_risk or 0),
            "relays": relay_counts(s, send_id),
            "resend_reason": send.resend_reason,
            "error": send.error,
            **counts,
        }
    if note:
        data["note"] = note
    if _emit(data, as_json):
        return
    t = Table(title=f"send {send_id}: {data['state']}")
    for k in ("planned", "sent", "queued", "sending", "deferred", "bounced", "failed", "skipped"):
        t.add_column(k, justify="right")
    t.add_row(
        *(
            str(data[k])
            for k in (
                "planned",
                "sent",
                "queued",
                "sending",
                "deferred",
                "bounced",
                "failed",
                "skipped",
            )
        )
    )
    console.print(t)
    print_relay_counts(data["relays"])  # type: ignore[arg-type]
    if data["already_received"]:
        console.print(
            f"skipped {data['already_received']} reader(s) who already received this issue "
            "from another send / 已收到本期的读者已跳过"
        )
    if data["at_risk"]:
        console.print(
            f"[yellow]at risk / 可能重复: {data['at_risk']}[/] (re-sent after a crash with the "
            "same Message-ID, so receivers can drop the copy)"
        )
    if data["error"]:
        console.print(f"[red]{data['error']}[/]")


@schedule_app.command("show")
def schedule_show(as_json: JsonOpt = False) -> None:
    """Show each publication's weekly slot and the next one."""
    from sqlalchemy import select

    from .db import session_scope
    from .models import Publication, utcnow
    from .schedule import next_slot, parse_time, slot_key

    with session_scope() as s:
        rows = []
        for p in s.scalars(select(Publication).order_by(Publication.id)):
            nxt = None
            if p.schedule_weekday and p.schedule_time:
                at = next_slot(
                    p.schedule_weekday, parse_time(p.schedule_time), p.timezone, utcnow()
                )
                nxt = slot_key(at, p.timezone)
            rows.append(
                {
                    "publication": p.slug,
                    "name": p.name,
                    "weekday": p.schedule_weekday,
                    "time": p.schedule_time,
                    "timezone": p.timezone,
                    "next_slot": nxt,
                    "default_list_id": p.default_list_id,
                }
            )
    if _emit(rows, as_json):
        return
    t = Table("publication", "name", "weekday", "time", "time zone", "next slot")
    for r in rows:
        t.add_row(
            *(
                str(r[k] or "")
                for k in ("publication", "name", "weekday", "time", "timezone", "next_slot")
            )
        )
    console.print(t)


@schedule_app.command("set")
def schedule_set(
    weekday: Annotated[int, typer.Option(help="1 = Monday … 7 = Sunday")],
    time: Annotated[str, typer.Option(help="local time HH:MM")],
    tz: Annotated[str, typer.Option(help="IANA time zone")] = "Asia/Shanghai",
    publication: Annotated[str | None, typer.Option(help="slug; default: the only one")] = None,
    list_name: Annotated[str | None, typer.Option("--list", help="default audience")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a publication's weekly slot, e.g. --weekday 1 --time 09:00 --tz Asia/Shanghai."""
    from sqlalchemy import select

    from .db import session_scope
    from .models import Publication
    from .schedule import set_schedule

    try:
        with session_scope() as s:
            q = select(Publication)
            if publication:
                q = q.where(Publication.slug == publication)
            pubs = s.scalars(q).all()
            if len(pubs) != 1:
                raise NewsletterError(
                    f"{len(pubs)} publications match; pass --publication SLUG"
                    if pubs
                    else "no publication yet: add an issue first"
                )
            pub = set_schedule(
                s, pubs[0], weekday=weekday, time=time, tz=tz, default_list=list_name
            )
            out = {"publication": pub.slug, "weekday": weekday, "time": time, "timezone": tz}
    except NewsletterError as exc:
        _fail(exc)
    if not _emit(out, as_json):
        console.print(f"{out['publication']}: every weekday {weekday} at {time} ({tz})")


@bounce_app.command("serve")
def bounces_serve(
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(help="SMTP port for bounces+TOKEN@ and unsubscribe+TOKEN@")] = 2525,
) -> None:
    """Run the SMTP endpoint that receives DSNs, ARF complaints and mailto unsubscribes."""
    import time

    from .delivery.bounces import start_bounce_server

    ctrl, _handler = start_bounce_server(host, port)
    console.print(f"bounce/unsubscribe SMTP endpoint on {host}:{port} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        ctrl.stop()


@bounce_app.command("scan")
def bounces_scan(maildir: Path, as_json: JsonOpt = False) -> None:
    """Apply every DSN/ARF report found in a maildir (already processed ones are skipped)."""
    from dataclasses import asdict

    from .delivery.bounces import process_maildir

    results = process_maildir(maildir)
    data = [asdict(r) for r in results]
    if not _emit(data, as_json):
        console.print(f"{len(results)} report(s) processed")


# -- stats -------------------------------------------------------------------


@app.command("stats")
def stats(send_id: int, as_json: JsonOpt = False) -> None:
    """Delivery, open and click statistics of a send (from rollups)."""
    from .db import session_scope
    from .tracking.stats import send_stats

    try:
        with session_scope() as s:
            data = send_stats(s, send_id)
    except NewsletterError as exc:
        _fail(exc)
    if _emit(data, as_json):
        return
    print_stats(data)


def print_stats(data: dict[str, Any], out: Console | None = None) -> None:
    out = out or console
    from .tracking.stats import sparkline

    t = Table(
        title=f"第{data['issue']}期 {data['title']} · send {data['send_id']} ({data['state']})"
    )
    t.add_column("metric / 指标")
    t.add_column("value / 数值", justify="right")
    rows: list[tuple[str, object]] = [
        ("planned / 计划", data["planned"]),
        ("delivered / 已送达", data["delivered"]),
        ("bounced / 退信", data["deliveries_bounced"]),
        ("failed / 失败", data["deliveries_failed"]),
        ("skipped / 跳过", data["deliveries_skipped"]),
        ("unique opens (human) / 独立打开", data["opens_unique"]),
        ("open rate / 打开率", f"{data['open_rate']:.1%}"),
        ("machine opens / 机器打开", data["opens_total_machine"]),
        ("unique clicks / 独立点击", data["clicks_unique"]),
        ("click rate / 点击率", f"{data['click_rate']:.1%}"),
        ("machine clicks / 机器点击", data["clicks_machine"]),
        ("web archive views / 网页浏览", data.get("archive_views", 0)),
        ("at risk of a duplicate / 可能重复", data.get("at_risk", 0)),
    ]
    wx = data.get("wechat") or {}
    rows += [  # the same three WeChat figures as the console and the CSV (wechat/stats.py)
        ("WeChat reads / 公众号阅读次数", wx.get("reads", 0)),
        ("WeChat readers / 公众号阅读人数", wx.get("readers", 0)),
        ("WeChat shares / 公众号分享次数", wx.get("shares", 0)),
    ]
    rows += [(f"sent via relay {k} / 经 {k} 送达", v) for k, v in data.get("relays", {}).items()]
    for k, v in rows:
        t.add_row(k, str(v))
    out.print(t)
    series = [v for _h, v in data["opens_by_hour"]]
    if series:
        out.print(f"opens by hour / 每小时打开: {sparkline(series)}")


# -- services ------------------------------------------------------------------


@app.command("doctor")
def doctor(as_json: JsonOpt = False) -> None:
    """Check the settings and DNS a sender needs (key, https, DKIM, SPF, DMARC, relay).

    Exits 1 when a check fails; each problem says what to fix, in Chinese and English.
    """
    from .delivery.doctor import run_doctor

    out = run_doctor()
    if not _emit(out, as_json):
        marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
        for c in out["checks"]:
            console.print(f"{marks[c['status']]} {c['name']}: {c['detail']}", markup=True)
            if c["fix"]:
                console.print(f"    → {c['fix']}", markup=False)
    if not out["ok"]:
        raise typer.Exit(1)


@app.command("web")
def web(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the web app (pixel, clicks, unsubscribe, archive)."""
    import uvicorn

    from .config import require_secret_key
    from .web.app import create_asgi

    require_secret_key("web")

    uvicorn.run(create_asgi(), host=host, port=port)


@app.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(help="worker processes")] = 2,
    loglevel: str = "info",
) -> None:
    """Start a Celery worker on the configured broker."""
    from .config import require_secret_key
    from .dispatch import dispatcher

    require_secret_key("worker")
    try:
        dispatcher().run_worker(concurrency, loglevel)
    except NewsletterError as exc:
        _fail(exc)


@app.command("beat")
def beat(loglevel: str = "info") -> None:
    """Start Celery beat (the scheduler tick and the event ingester)."""
    from .config import get_settings, require_secret_key
    from .dispatch import dispatcher

    require_secret_key("beat")
    var = get_settings().var_dir
    var.mkdir(parents=True, exist_ok=True)
    try:
        dispatcher().run_beat(loglevel, var / "celerybeat-schedule")
    except NewsletterError as exc:
        _fail(exc)


@app.command("ingest")
def ingest_cmd(
    once: Annotated[bool, typer.Option(help="drain what is there, then exit")] = False,
) -> None:
    """Consume the event stream from Redis into the database."""
    from .config import require_secret_key
    from .tracking.ingester import consume

    require_secret_key("ingest")

    n = consume(max_batches=50 if once else None, block_ms=200 if once else 1000)
    console.print(f"ingested {n} events")


@app.command("demo")
def demo(
    workdir: Annotated[Path, typer.Option(help="where the demo keeps its files")] = Path(
        "var/demo"
    ),
    issue_file: Annotated[Path, typer.Option("--issue")] = Path("examples/issue-sample.md"),
    subscribers: Annotated[Path, typer.Option()] = Path("examples/subscribers.csv"),
) -> None:
    """Run the whole slice with no services: render, import, send, open, stats."""
    from .demo import run_demo

    try:
        run_demo(workdir, issue_file, subscribers, console)
    except NewsletterError as exc:
        _fail(exc)


def main() -> None:
    """Entry point: every error is one line (en/zh), non-zero exit; ``--debug`` shows tracebacks."""
    from .clierrors import run

    sys.exit(run(app))


if __name__ == "__main__":
    main()
