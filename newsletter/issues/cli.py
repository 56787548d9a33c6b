"""``newsletter issue …``: add, lint, render, preview, import plain text, review, approve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from newsletter.core.catalogue import message as catalogue_message
from newsletter.core.errors import NewsletterError
from newsletter.core.terminal import JsonOpt, console, emit, err, error_line, fail

__all__ = ["issue_app"]

issue_app = typer.Typer(help="Issues: add, lint, render, import plain text", no_args_is_help=True)


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
    from newsletter.core.db import session_scope
    from newsletter.issues.store import create_issue

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
        fail(exc)
    if not emit(out, as_json):
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
    from newsletter.content.parser import load_issue
    from newsletter.content.variants import to_variant
    from newsletter.render import CHANNELS, render_channels, write_outputs

    try:
        doc, warnings = load_issue(file)
        doc = to_variant(doc, variant)
        result = render_channels(doc, _ctx_for_file(doc))
        write_outputs(result, out)
    except (NewsletterError, OSError) as exc:
        fail(exc)
    report = result.report()
    report["input_warnings"] = warnings
    if not emit(report, as_json):
        for w in warnings:
            err.print(f"[yellow]warning:[/] {w}")
        for ch in CHANNELS:
            if ch in result.errors:
                error_line(str(result.errors[ch]), where=ch)
            else:
                console.print(f"{ch}: ok", markup=False)
        mode = f"  (email mode: {result.email.mode}; {result.email.reason})" if result.email else ""
        console.print(f"wrote {out}/{mode}", markup=False)
    if result.errors:
        raise typer.Exit(1)


def _ctx_for_file(doc: Any) -> Any:
    from newsletter.core.config import get_settings
    from newsletter.render.context import RenderContext

    cfg = get_settings()
    return RenderContext(
        base_url=cfg.base_url,
        publication_name=doc.publication,
        publication_slug="weekly",
        postal_address=cfg.postal_address,
        sender_name=cfg.from_name,
        email_budget_bytes=cfg.html_budget_bytes,
    )


@issue_app.command("import")
def issue_import(
    file: Path,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Markdown file to write")] = None,
    number: Annotated[int | None, typer.Option(help="issue number if the text lacks one")] = None,
    outline: Annotated[
        bool,
        typer.Option(
            "--outline",
            help="print every line with its number, class and why (writes nothing unless --out)",
        ),
    ] = False,
    hint: Annotated[
        list[str] | None,
        typer.Option("--hint", help="LINE=CLASS correction, e.g. 42=item (kept in the output)"),
    ] = None,
    publication: Annotated[
        str | None,
        typer.Option(
            "--publication",
            help="apply this publication's learnt import rules, and learn the --hint corrections",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a brief (Word .docx, a saved web or WeChat page, Markdown, or plain text) as issue Markdown.

    Structure is read from the document: heading styles, Word's numbering, and the
    markers its lines repeat.  Images go to images/ beside the output.  Hints given with --hint, and those already kept in the output file's
    import_hints front matter, are applied and written back.
    """
    from newsletter.content.textimport import import_issue_text, parse_hints

    try:
        pub_id, rules = _publication_rules(publication) if publication else (None, [])
        write = not outline or out is not None  # an outline alone reads, never writes
        report, lines = import_issue_text(
            file, out, number=number, hints=hint or [], rules=rules, write=write
        )
        missing = any("未找到期数" in w for w in report["warnings"])
        if pub_id is not None and number is None and missing and (nxt := _next_number(pub_id)):
            number = nxt
            report, lines = import_issue_text(
                file, out, number=number, hints=hint or [], rules=rules, write=write
            )
            from newsletter.core.catalogue import message

            report["warnings"] = [w for w in report["warnings"] if "未找到期数" not in w] + [
                message("import.number_guessed", number=nxt).line()
            ]
        if pub_id is not None and hint:
            # a correction is learnt as a pattern and applies at once to every line it covers
            from newsletter.core.db import session_scope
            from newsletter.issues.styles import learn, rules_of

            with session_scope() as s:
                texts = {n: t for n, _, t in lines}
                learnt = learn(s, pub_id, texts, parse_hints(hint), "cli")
                rules = rules_of(s, pub_id)
            report, lines = import_issue_text(
                file, out, number=number, hints=hint or [], rules=rules, write=write
            )
            report["learnt"] = learnt
    except ValueError as exc:
        error_line(f"提示无效：{exc} / invalid hint: {exc}")
        raise typer.Exit(2) from None
    except NewsletterError as exc:
        error_line(str(exc))  # one line, never wrapped: editors and scripts grep it
        raise typer.Exit(2) from None
    if emit(report | ({"outline": lines} if outline else {}), as_json):
        return
    if outline:
        from newsletter.content.textimport import CLASS_LABELS

        for n, cls, txt in lines:
            why = report["reasons"].get(n, "")
            label = f"{CLASS_LABELS.get(cls, cls)}({cls})"
            console.print(
                f"{n:>5} {label:<16} {txt}" + (f"  ← {why}" if why else ""),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def say(code: str, out: Console = console, style: str | None = None, **params: Any) -> None:
        params = {k: _short(v) for k, v in params.items()}  # an echo, never the whole line
        line = catalogue_message(code, **params).line()
        out.print(line, markup=False, highlight=False, soft_wrap=True, style=style)

    if report["written"]:
        say("import.wrote", path=report["written"])
    for line, txt in report["chrome"]:
        say("import.chrome_line", style="dim", line=line, text=txt)
    for line, txt in report["contents"]:
        say("import.contents_line", style="dim", line=line, text=txt)
    for name in report["images"]:
        say("import.image_saved", style="dim", name=name)
    for kind, pattern, cls in report.get("learnt", []):
        marker = kind == "marker"
        what_zh = f"以“{pattern}”开头的行" if marker else f"“{pattern}”这一行"
        what_en = f"lines starting like “{pattern}”" if marker else f"the line “{pattern}”"
        say("import.learnt", what_zh=what_zh, what_en=what_en, cls=cls)
    note = catalogue_message("import.note").line()
    for w in report["warnings"]:  # each already reads 中文 / English
        text = f"{note}：{_short(w, 300)}"
        err.print(text, markup=False, highlight=False, soft_wrap=True, style="yellow")


def _short(value: Any, limit: int = 120) -> Any:
    """A pasted line echoed back: one line without control characters (the header
    cleaner's rule), at most ``limit`` characters."""
    if not isinstance(value, str):
        return value
    from newsletter.core.safety.headers import clean_text

    text = clean_text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


issue_app.command("import-text", help="Same as `issue import` (kept for scripts).")(issue_import)


def _next_number(pub_id: int) -> int | None:
    from sqlalchemy import func, select

    from newsletter.core.db import session_scope
    from newsletter.models import Issue

    with session_scope() as s:
        top = s.scalar(select(func.max(Issue.number)).where(Issue.publication_id == pub_id))
        return int(top) + 1 if top else None


def _publication_rules(slug: str) -> tuple[int, list[tuple[str, str, str]]]:
    from sqlalchemy import select

    from newsletter.core.db import session_scope
    from newsletter.core.errors import NotFound
    from newsletter.issues.styles import rules_of
    from newsletter.models import Publication

    with session_scope() as s:
        pub = s.scalar(select(Publication).where(Publication.slug == slug))
        if pub is None:
            raise NotFound(f"刊物 {slug} 不存在 / no publication {slug}")
        return pub.id, rules_of(s, pub.id)


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

    from newsletter.core.config import get_settings
    from newsletter.core.db import session_scope
    from newsletter.core.errors import ConfigError
    from newsletter.issues.feeds import FEEDS_ACTOR, draft_from_feeds, load_config
    from newsletter.issues.store import create_issue
    from newsletter.models import Publication

    try:
        path = feeds or (Path(get_settings().feeds_file) if get_settings().feeds_file else None)
        if path is None:
            raise ConfigError(
                "未配置订阅源：用 --feeds 或 NEWSLETTER_FEEDS_FILE / no feeds file: "
                "give --feeds or set NEWSLETTER_FEEDS_FILE"
            )
        cfg = load_config(path)
        try:
            start = dt.date.fromisoformat(since) if since else None
        except ValueError:
            raise ConfigError(
                f"--since 应为 YYYY-MM-DD：{(since or '')[:40]} / --since must be YYYY-MM-DD"
            ) from None
        with session_scope() as s:
            pubs = list(s.scalars(select(Publication).order_by(Publication.id)))
            pub = (
                next((p for p in pubs if p.slug == publication), None)
                if publication
                else (pubs[0] if len(pubs) == 1 else None)
            )
            if pub is None:
                raise ConfigError(
                    "请用 --publication 指定刊物 / name the publication with "
                    f"--publication ({', '.join(p.slug for p in pubs) or '-'})"
                )
            draft = draft_from_feeds(s, pub, cfg, since=start)
            target = out or get_settings().var_dir / "drafts" / f"{pub.slug}-{draft.number}.md"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(draft.markdown, encoding="utf-8")
            result: dict[str, Any] = {
                "file": str(target),
                "number": draft.number,
                "items": draft.items,
                "skipped_old": draft.skipped_old,
                "skipped_known": draft.skipped_known,
                "skipped_duplicate": draft.skipped_duplicate,
                "problems": draft.problems,
            }
            if add and draft.items:
                issue, warnings = create_issue(
                    s, target, publication_slug=pub.slug, actor=FEEDS_ACTOR
                )
                result.update(issue_id=issue.id, status=issue.status, warnings=warnings)
    except NewsletterError as exc:
        fail(exc)
    if not emit(result, as_json):
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
    from newsletter.content.parser import load_issue
    from newsletter.content.variants import to_variant
    from newsletter.render import render_all
    from newsletter.render.preview import preview_html
    from newsletter.render.preview import screenshots as take

    try:
        doc, _w = load_issue(file)
        result = render_all(to_variant(doc, variant), _ctx_for_file(doc))
    except NewsletterError as exc:
        fail(exc)
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
    from newsletter.core.db import session_scope
    from newsletter.issues.review import approve, submit_for_review
    from newsletter.issues.store import get_issue

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
        fail(exc)
    if not emit(out, as_json):
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

    from newsletter.core.db import session_scope
    from newsletter.models import Issue

    with session_scope() as s:
        rows = [
            {
                "id": i.id,
                "number": i.number,
                "title": i.title,
                "status": i.status,
                "approved_by": i.approved_by,
            }
            for i in s.scalars(
                select(Issue).where(Issue.kind == "weekly").order_by(Issue.number.desc())
            )
        ]
    if emit(rows, as_json):
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


@issue_app.command("move")
def issue_move(
    ref: str,
    to: Annotated[str, typer.Option("--to", help="the publication's slug")],
    by: Annotated[str, typer.Option(help="who moves it (recorded)")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Move an issue (id or #number) to another publication (audited). An approved issue
    goes back to review; an issue with sends cannot move."""
    from newsletter.core.catalogue import message
    from newsletter.core.db import session_scope
    from newsletter.issues.publications import move_issue, publication_by_slug
    from newsletter.issues.store import get_issue

    try:
        with session_scope() as s:
            issue = get_issue(s, ref)
            moved = move_issue(s, issue, publication_by_slug(s, to), by)
            out = {"id": issue.id, "number": issue.number, "publication": to,
                   "status": issue.status, "moved": moved}  # fmt: skip
    except NewsletterError as exc:
        fail(exc)
    if not emit(out, as_json):
        console.print(message("publication.moved", number=out["number"], slug=to).line(),
                      markup=False)  # fmt: skip
