"""Console services for issues: upload, list, preview, lint, approve, test send (the import
is in :mod:`.imports`, review in :mod:`.review`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import select

from newsletter.core.caches import process_cache
from newsletter.core.catalogue import coded
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError, NotFound
from newsletter.issues.store import (
    context_for,
    create_issue,
    get_issue,
    parse_for_use,
    render_issue,
)
from newsletter.models import Issue, Publication, Rendition
from newsletter.web.console.auth import Principal, record
from newsletter.web.console.services.common import SAFE_NAME, ConsoleError

__all__ = [
    "approve_issue",
    "frame_html",
    "issue_summary",
    "lint",
    "list_issues",
    "zone_label",
    "load_issue_row",
    "preview_outputs",
    "test_send",
    "upload_issue",
]


def _upload_dir(data: bytes) -> Path:
    d = get_settings().var_dir / "uploads" / hashlib.sha256(data).hexdigest()[:16]
    d.mkdir(parents=True, exist_ok=True)
    return d


def upload_issue(
    actor: Principal,
    filename: str,
    data: bytes,
    images: list[tuple[str, bytes]] | None = None,
    request: Request | None = None,
    publication: str | None = None,
) -> dict[str, Any]:
    """Store an uploaded (or pasted) issue source as a draft; returns the issue summary."""
    from newsletter.content.parser import parse_issue

    if not data.strip():
        raise ConsoleError("the file is empty / 文件为空")
    if len(data) > 5_000_000:
        raise ConsoleError("the file is larger than 5 MB / 文件超过 5 MB")
    name = SAFE_NAME.sub("_", Path(filename or "issue.md").name) or "issue.md"
    if not name.endswith((".md", ".markdown", ".txt")):
        name += ".md"
    d = _upload_dir(data)
    path = d / name
    path.write_bytes(data)
    if images:
        # Put each uploaded image where the source refers to it (by file name), inside d.
        try:
            from newsletter.content.decode import decode_source

            text, _w = decode_source(data, path=str(path))
            doc = parse_issue(text, path=str(path), base_dir=d)
            srcs = [im.src for im in doc.images]
            cover = getattr(doc, "cover", None)
            if isinstance(cover, str) and cover:
                srcs.append(cover)
        except NewsletterError:
            srcs = []
        by_name = {Path(n).name: b for n, b in images if n}
        for src in srcs:
            if src.startswith(("http://", "https://")) or Path(src).name not in by_name:
                continue
            target = (d / src).resolve()
            if d.resolve() not in target.parents:
                continue  # "../" in a source path never writes outside the upload directory
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(by_name[Path(src).name])
    with session_scope() as s:
        if publication and not s.scalar(select(Publication).where(Publication.slug == publication)):
            raise coded(ConsoleError, "publication.unknown", slug=publication)
        issue, warnings = create_issue(
            s, path, actor=actor.username, publication_slug=publication or None
        )
        record(
            s,
            actor,
            "issue.upload",
            f"issue:{issue.id}",
            request,
            number=issue.number,
            source_hash=issue.source_hash,
        )
        return {**issue_summary(issue), "warnings": warnings}


def issue_summary(issue: Issue) -> dict[str, Any]:
    return {
        "id": issue.id,
        "number": issue.number,
        "title": issue.title,
        "period": issue.period,
        "status": issue.status,
        "approved_by": issue.approved_by,
        "approved_at": issue.approved_at.isoformat() if issue.approved_at else None,
        "updated_at": issue.updated_at.isoformat() if issue.updated_at else None,
    }


def list_issues(limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    with session_scope() as s:
        rows = s.scalars(
            select(Issue)
            .where(Issue.kind == "weekly")
            .order_by(Issue.number.desc(), Issue.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        return [issue_summary(i) for i in rows]


from newsletter.web.console.i18n import ZONE_NAMES as _ZONE_LABELS  # noqa: E402


def zone_label(zone: str) -> str:
    """``Asia/Shanghai`` → ``北京时间``; other zones by their IANA name."""
    return _ZONE_LABELS.get(zone, zone)


def load_issue_row(issue_id: int) -> dict[str, Any]:
    """The issue's summary and its sealed version (which, by whom, when), if approved."""
    from newsletter.issues.seal import seal_info

    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        if issue is None:
            raise NotFound(f"issue {issue_id} does not exist / 期刊不存在")
        pub = s.get(Publication, issue.publication_id)
        return {
            **issue_summary(issue),
            "seal": seal_info(s, issue),
            "publication": pub.name if pub is not None else "",
            "zone": pub.timezone if pub is not None else "Asia/Shanghai",
            "zone_label": zone_label(pub.timezone if pub is not None else "Asia/Shanghai"),
            # four-eyes: who may not approve this version (the uploader and the last editor)
            "authors": sorted(
                {n for n in (issue.created_by, issue.updated_by) if n}
                if pub is None or pub.four_eyes
                else set()
            ),
        }


def preview_outputs(issue_id: int, variant: str = "zh-Hans") -> dict[str, Any]:
    """Render (cached) and list the outputs of one variant with their sizes."""
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        if issue is None:
            raise NotFound(f"issue {issue_id} does not exist / 期刊不存在")
        render_issue(s, issue_id)
        rows = s.scalars(
            select(Rendition).where(Rendition.issue_id == issue_id, Rendition.variant == variant)
        ).all()
        outputs = {
            r.output: {
                "bytes": r.size_bytes,
                "chars": r.size_chars,
                "mode": r.mode,
                "subject": r.subject,
            }
            for r in rows
        }
    wechat = sorted((k for k in outputs if k.startswith("wechat-")), key=lambda k: int(k[7:]))
    return {"outputs": outputs, "wechat": wechat}


def _personalise(doc: str) -> str:
    return (
        doc.replace("%%NAME%%", "示例读者")
        .replace("%%TOKEN%%", "preview")
        .replace("%%UNSUB%%", "preview")
    )


def frame_html(issue_id: int, output: str, variant: str = "zh-Hans") -> str:
    """One output as a reader sees it (slots filled with sample values)."""
    import html as _html

    variant = variant if variant in ("zh-Hans", "zh-Hant") else "zh-Hans"
    if output == "digest":
        from newsletter.content.variants import to_variant
        from newsletter.render.email import render_email_html

        with session_scope() as s:
            issue = s.get(Issue, issue_id)
            if issue is None:
                raise NotFound(f"issue {issue_id} does not exist / 期刊不存在")
            pub = s.get(Publication, issue.publication_id)
            assert pub is not None
            doc = to_variant(parse_for_use(s, issue), variant)  # once approved: the seal
            ctx = context_for(pub)
        digest, _links = render_email_html(doc, ctx, "digest")
        return _personalise(digest)
    with session_scope() as s:
        render_issue(s, issue_id)
        body = s.scalar(
            select(Rendition.body).where(
                Rendition.issue_id == issue_id,
                Rendition.variant == variant,
                Rendition.output == output,
            )
        )
    if body is None:
        raise NotFound(f"no {output} output / 无此输出")
    if output == "email_text":
        return (
            "<!doctype html><meta charset='utf-8'><pre style='white-space:pre-wrap;"
            "font-family:monospace;padding:12px'>" + _html.escape(_personalise(body)) + "</pre>"
        )
    return _personalise(body)


_lint_cache: dict[tuple[str, int, str, str], dict[str, Any]] = process_cache({})


def _dir_signature(base: str | None) -> str:
    """Names and sizes of the files next to the issue (images added later change the lint)."""
    if not base or not Path(base).is_dir():
        return ""
    files = sorted(
        (str(p.relative_to(base)), p.stat().st_size)
        for p in list(Path(base).rglob("*"))[:500]
        if p.is_file()
    )
    return hashlib.sha256(repr(files).encode()).hexdigest()


def lint(issue_id: int) -> dict[str, Any]:
    """Lint messages (with line numbers) and every channel's size budget."""
    from newsletter.reports.lint import full_lint

    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        if issue is None:
            raise NotFound(f"issue {issue_id} does not exist / 期刊不存在")
        key = (get_settings().db_url, issue.id, issue.source_hash, _dir_signature(issue.base_dir))
        if key in _lint_cache:
            return _lint_cache[key]
        pub = s.get(Publication, issue.publication_id)
        assert pub is not None
        ctx = context_for(pub)
        text, base = issue.source_text, issue.base_dir
    path = Path(base) / "issue.md" if base else None
    # The same checks as ``newsletter issue lint`` (budgets, e-mail CSS support, WeChat images).
    messages, sizes = full_lint(text, path, lambda _doc: ctx)
    budgets = [{"level": lvl, "code": code, "message": msg} for lvl, code, msg in sizes]
    result = {
        "messages": [
            {"level": m.level, "line": m.line, "code": m.code, "message": m.message}
            for m in messages
        ],
        "budgets": budgets,
        "errors": sum(1 for m in messages if m.level == "error"),
        "warnings": sum(1 for m in messages if m.level == "warning"),
    }
    _lint_cache[key] = result
    return result


def approve_issue(
    actor: Principal, issue_id: int, request: Request | None = None
) -> dict[str, Any]:
    from newsletter.issues.review import approve

    with session_scope() as s:
        issue = get_issue(s, issue_id)
        approve(s, issue, actor.username)  # writes "issue.approve" to the audit log
        record(s, actor, "console.approve", f"issue:{issue.id}", request)
        return issue_summary(issue)


def test_send(
    actor: Principal, issue_id: int, to: list[str], variant: str, request: Request | None = None
) -> list[dict[str, Any]]:
    from newsletter.delivery.testsend import send_test

    to = [a.strip() for a in to if a.strip()]
    if not to:
        raise ConsoleError("give at least one address / 请填写收件地址")
    if len(to) > 10:
        raise ConsoleError("at most 10 test addresses / 最多 10 个测试地址")
    if variant not in ("zh-Hans", "zh-Hant", "both"):
        raise ConsoleError("variant must be zh-Hans, zh-Hant or both")
    results = send_test(str(issue_id), to, variant)
    with session_scope() as s:
        record(
            s,
            actor,
            "send.test",
            f"issue:{issue_id}",
            request,
            to=to,
            variant=variant,
            results=[r["state"] for r in results],
        )
    return results
