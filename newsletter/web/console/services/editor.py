"""Editing an issue's source in the browser: a live preview of every channel and variant,
lint as one types, and saving as a new version of the draft.

The preview renders in memory from the text being typed (nothing is stored): the same
parser, linter and renderers as ``newsletter issue lint`` and ``issue render``, so the
messages are the CLI's. Saving goes through :func:`.issues.upload_issue` with the
issue's own images carried over, so it is exactly an upload: a new version of the
draft (an approved issue goes back to review), audited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request

from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError, NotFound
from newsletter.issues.store import context_for
from newsletter.models import Issue, Publication
from newsletter.web.console.auth import Principal
from newsletter.web.console.services.common import ConsoleError
from newsletter.web.console.services.issues import upload_issue

__all__ = ["EDITABLE", "editor_state", "live_preview", "save_source"]

#: Issue states whose source may still change (scheduled and sent issues are final).
EDITABLE = ("draft", "in_review", "approved")
MAX_SOURCE = 1_000_000


def editor_state(issue_id: int) -> dict[str, Any]:
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        if issue is None:
            raise NotFound(f"issue {issue_id} does not exist / 期刊不存在")
        return {
            "id": issue.id,
            "number": issue.number,
            "title": issue.title,
            "status": issue.status,
            "source": issue.source_text,
            "editable": issue.status in EDITABLE,
        }


def _context(issue_id: int) -> tuple[Any, str | None]:
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        if issue is None:
            raise NotFound(f"issue {issue_id} does not exist / 期刊不存在")
        pub = s.get(Publication, issue.publication_id)
        assert pub is not None
        return context_for(pub), issue.base_dir


def _sample(html: str) -> str:
    return (
        html.replace("%%NAME%%", "示例读者")
        .replace("%%TOKEN%%", "preview")
        .replace("%%UNSUB%%", "preview")
    )


def live_preview(issue_id: int, source: str, variant: str = "zh-Hans") -> dict[str, Any]:
    """Lint and render ``source`` (not stored): ``{"lint": …, "outputs": {name: html},
    "order": [names], "errors": {channel: line}}``."""
    from newsletter.content.parser import parse_issue
    from newsletter.content.variants import to_variant
    from newsletter.render import render_channels
    from newsletter.reports.lint import full_lint

    if len(source) > MAX_SOURCE:
        raise ConsoleError("the source is longer than 1,000,000 characters / 源文件超过一百万字")
    variant = variant if variant in ("zh-Hans", "zh-Hant") else "zh-Hans"
    ctx, base = _context(issue_id)
    base_dir = Path(base) if base else None
    messages, sizes = full_lint(
        source, base_dir / "issue.md" if base_dir else None, lambda _doc: ctx
    )
    lint = {
        "messages": [
            {"level": m.level, "line": m.line, "code": m.code, "message": m.message}
            for m in messages
        ],
        "budgets": [{"level": lvl, "code": code, "message": msg} for lvl, code, msg in sizes],
        "errors": sum(1 for m in messages if m.level == "error"),
        "warnings": sum(1 for m in messages if m.level == "warning"),
    }
    outputs: dict[str, str] = {}
    errors: dict[str, str] = {}
    try:
        doc = to_variant(parse_issue(source, base_dir=base_dir), variant)
    except NewsletterError as exc:
        return {
            "lint": lint,
            "outputs": {},
            "order": [],
            "errors": {"parse": str(exc).splitlines()[0][:300]},
        }
    result = render_channels(doc, ctx)
    if result.email is not None:
        outputs["email_html"] = _sample(result.email.html)
        outputs["email_text"] = _sample(result.email.text)
    for i, article in enumerate(result.wechat or [], start=1):
        outputs[f"wechat-{i}"] = article.content
    if result.web is not None:
        outputs["web"] = result.web
    errors.update({k: v.splitlines()[0][:300] for k, v in result.errors.items()})
    return {"lint": lint, "outputs": outputs, "order": list(outputs), "errors": errors}


def save_source(
    actor: Principal, issue_id: int, source: str, request: Request | None = None
) -> dict[str, Any]:
    """Store ``source`` as the new version of the issue (its images carried over)."""
    from newsletter.content.parser import parse_issue

    state = editor_state(issue_id)
    if not state["editable"]:
        raise ConsoleError(
            f"issue {issue_id} is {state['status']}; it can no longer be edited"
            " / 期刊已排期或已发送，不能再修改"
        )
    _ctx, base = _context(issue_id)
    images: list[tuple[str, bytes]] = []
    if base:
        base_dir = Path(base).resolve()
        try:
            doc = parse_issue(source, base_dir=base_dir)
            srcs = [im.src for im in doc.images] + ([doc.cover] if doc.cover else [])
        except NewsletterError:
            srcs = []
        for src in srcs:
            if not src or src.startswith(("http://", "https://")):
                continue
            path = (base_dir / src).resolve()
            if base_dir in path.parents and path.is_file():  # never outside the issue folder
                images.append((path.name, path.read_bytes()))
    return upload_issue(actor, "issue.md", source.encode("utf-8"), images, request)
