"""Console services for issues: upload, preview, lint, approve, test send, plain-text import."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import select

from newsletter.core.caches import process_cache
from newsletter.core.catalogue import coded, message
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
from newsletter.web.console.services.common import ConsoleError

__all__ = [
    "approve_issue",
    "frame_html",
    "import_preview",
    "issue_summary",
    "lint",
    "list_issues",
    "load_issue_row",
    "preview_outputs",
    "test_send",
    "upload_issue",
]


_SAFE_NAME = re.compile(r"[^\w.\-\u4e00-\u9fff]+")


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
    name = _SAFE_NAME.sub("_", Path(filename or "issue.md").name) or "issue.md"
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
            select(Issue).order_by(Issue.number.desc(), Issue.id.desc()).limit(limit).offset(offset)
        ).all()
        return [issue_summary(i) for i in rows]


_ZONE_LABELS = {
    "Asia/Shanghai": "北京时间",
    "Asia/Hong_Kong": "香港时间",
    "Asia/Taipei": "台北时间",
}


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


def import_preview(
    data: bytes,
    hints: dict[int, str],
    number: int | None,
    *,
    name: str = "",
    doc: str = "",
    publication: str = "",
) -> dict[str, Any]:
    """Import a pasted or uploaded brief (text, Word or a web page): outline, summary, Markdown.

    Nothing is stored as an issue; :func:`upload_issue` stores the Markdown once the
    editor is satisfied.  ``hints`` are the editor's reclassifications (line → class).
    A Word or HTML upload is kept under ``var/imports`` by its hash (``doc``) so that a
    re-run keeps its structure, links and images, and saving keeps its images.
    """
    from newsletter.content.documents import read_document
    from newsletter.content.textimport import import_text

    if doc:
        data, name = _kept_import(doc)
    if len(data) > 5_000_000:
        raise coded(ConsoleError, "import.too_large")
    text, source, warnings = read_document(data, name=name)
    if source is not None and not doc:
        doc = _keep_import(data, name)
    rules = _rules(publication) if publication else []
    result = import_text(
        text, front_matter={"number": number}, hints=hints, source=source, rules=rules
    )
    guessed = _next_number(publication) if publication and not number else None
    if guessed and "\nnumber:" not in result.markdown.split("\n---", 1)[0]:
        result = import_text(
            text, front_matter={"number": guessed}, hints=hints, source=source, rules=rules
        )
        result.warnings = [w for w in result.warnings if "未找到期数" not in w]
        result.warnings.append(message("import.number_guessed", number=guessed).line())
    from newsletter.content.parser import parse_issue

    parsed = parse_issue(result.markdown)
    items = [it for sec in parsed.sections for it in sec.items]
    summary = {
        "sections": len(parsed.sections),
        "items": len(items),
        "meta": sum(len(it.meta) for it in items),
        "tables": result.markdown.count("\n|---"),
        "images": len(result.images),
        "links": len(set(re.findall(r"https?://[^\s<>)|]+", result.markdown))),
    }
    return {
        "text": text,
        "markdown": result.markdown,
        "outline": result.outline,
        "reasons": result.reasons,
        "chrome": result.chrome,
        "contents": result.contents,
        "warnings": warnings + result.warnings,
        "script": result.script,
        "hints": hints,
        "doc": doc,
        "kind": source.kind if source is not None else "text",
        "summary": summary,
    }


_DOC_TOKEN = re.compile(r"^[0-9a-f]{64}$")


def _imports_dir() -> Path:
    d = get_settings().var_dir / "imports"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _keep_import(data: bytes, name: str) -> str:
    token = hashlib.sha256(data).hexdigest()
    d = _imports_dir()
    (d / f"{token}.bin").write_bytes(data)
    (d / f"{token}.name").write_text(_SAFE_NAME.sub("_", Path(name).name)[:100], "utf-8")
    return token


def _kept_import(token: str) -> tuple[bytes, str]:
    """The document kept by :func:`_keep_import`; the token is checked, never a path."""
    if not _DOC_TOKEN.match(token):
        raise coded(ConsoleError, "import.expired")
    d = _imports_dir()
    try:
        return (d / f"{token}.bin").read_bytes(), (d / f"{token}.name").read_text("utf-8")
    except OSError:
        raise coded(ConsoleError, "import.expired") from None


def import_images(doc: str) -> list[tuple[str, bytes]]:
    """The images of a kept Word or HTML import, for :func:`upload_issue`."""
    if not doc:
        return []
    from newsletter.content.documents import read_document

    data, name = _kept_import(doc)
    _, source, _ = read_document(data, name=name)
    if source is None:
        return []
    return [(f"images/{im.name}", im.data) for im in source.images.values()]


def _next_number(publication: str) -> int | None:
    """The publication's next issue number (its highest plus one), or None without issues."""
    from sqlalchemy import func

    with session_scope() as s:
        pub = s.scalar(select(Publication).where(Publication.slug == publication))
        if pub is None:
            return None
        top = s.scalar(select(func.max(Issue.number)).where(Issue.publication_id == pub.id))
        return int(top) + 1 if top else None


def _rules(publication: str) -> list[tuple[str, str, str]]:
    from newsletter.issues.styles import rules_of

    with session_scope() as s:
        pub = s.scalar(select(Publication).where(Publication.slug == publication))
        if pub is None:
            raise coded(ConsoleError, "publication.unknown", slug=publication)
        return rules_of(s, pub.id)


def learn_import_rules(
    actor: Principal, publication: str, text: str, doc: str, corrections: dict[int, str]
) -> list[tuple[str, str, str]]:
    """Keep an editor's outline corrections as rules of the publication (audited)."""
    from newsletter.content.documents import read_document
    from newsletter.issues.styles import learn

    if doc:
        data, name = _kept_import(doc)
        text = read_document(data, name=name)[0]
    lines = dict(enumerate(text.replace("\r\n", "\n").split("\n"), 1))
    with session_scope() as s:
        pub = s.scalar(select(Publication).where(Publication.slug == publication))
        if pub is None:
            raise coded(ConsoleError, "publication.unknown", slug=publication)
        learnt = learn(s, pub.id, lines, corrections, actor.username)
        if learnt:
            record(s, actor, "import.learn", f"publication:{pub.id}", None, rules=learnt)
        return learnt


def publication_choices() -> list[tuple[str, str]]:
    """``(slug, name)`` of every publication, for the import and upload forms."""
    with session_scope() as s:
        return [(p.slug, p.name) for p in s.scalars(select(Publication).order_by(Publication.id))]


# -- review both ways -------------------------------------------------------------------


def _names(s: Any, usernames: set[str]) -> dict[str, str]:
    """Username → display name (the username when the user has none, or is not a user)."""
    from newsletter.models import User

    rows = s.execute(
        select(User.username, User.display_name).where(User.username.in_(usernames))
    ).all()
    found = {u: (d or u) for u, d in rows}
    return {u: found.get(u, u) for u in usernames}


def submit_review(actor: Principal, issue_id: int, request: Request | None = None) -> None:
    from newsletter.issues.review import submit_for_review

    with session_scope() as s:
        issue = get_issue(s, issue_id)
        submit_for_review(s, issue, actor.username)
        record(s, actor, "console.review", f"issue:{issue.id}", request)


def request_changes(
    actor: Principal, issue_id: int, note: str, request: Request | None = None
) -> None:
    from newsletter.issues.review import request_changes as send_back

    with session_scope() as s:
        issue = get_issue(s, issue_id)
        send_back(s, issue, actor.username, note)


def issue_history(issue_id: int) -> dict[str, Any]:
    """The versions of an issue's source and its review events, people by display name."""
    from newsletter.core.audit import AuditLog
    from newsletter.models import IssueVersion

    with session_scope() as s:
        versions = s.scalars(
            select(IssueVersion)
            .where(IssueVersion.issue_id == issue_id)
            .order_by(IssueVersion.version.desc())
        ).all()
        events = s.scalars(
            select(AuditLog)
            .where(
                AuditLog.target == f"issue:{issue_id}",
                AuditLog.action.in_(
                    ("issue.upload", "issue.review", "issue.approve", "issue.request_changes")
                ),
            )
            .order_by(AuditLog.id.desc())
            .limit(50)
        ).all()
        names = _names(
            s, {v.created_by for v in versions if v.created_by} | {e.actor for e in events}
        )
        return {
            "versions": [
                {
                    "version": v.version,
                    "by": names.get(v.created_by or "", v.created_by or "—"),
                    "at": v.created_at.isoformat(),
                }
                for v in versions
            ],
            "events": [
                {
                    "action": e.action,
                    "by": names.get(e.actor, e.actor),
                    "at": e.at.isoformat(),
                    "note": (e.detail or {}).get("note", ""),
                }
                for e in events
            ],
        }


def version_diff(issue_id: int, a: int, b: int) -> dict[str, Any]:
    """A side-by-side diff of two versions of the source (difflib; escaped by it)."""
    import difflib

    from newsletter.models import IssueVersion

    with session_scope() as s:
        issue = get_issue(s, issue_id)
        rows = {
            v.version: v.source_text
            for v in s.scalars(
                select(IssueVersion).where(
                    IssueVersion.issue_id == issue_id, IssueVersion.version.in_((a, b))
                )
            )
        }
        if a not in rows or b not in rows:
            raise coded(NotFound, "review.no_version", a=a, b=b)
        table = difflib.HtmlDiff(wrapcolumn=48).make_table(
            rows[a].splitlines(),
            rows[b].splitlines(),
            f"v{a}",
            f"v{b}",
            context=True,
            numlines=2,
        )
        return {"number": issue.number, "title": issue.title, "a": a, "b": b, "table": table}


def review_queue(actor: Principal) -> dict[str, list[dict[str, Any]]]:
    """For the dashboard: issues waiting for this person's review (not their own), and their
    own issues sent back with a note."""
    from newsletter.core.audit import AuditLog

    with session_scope() as s:
        waiting = [
            issue_summary(i)
            for i in s.scalars(
                select(Issue).where(Issue.status == "in_review").order_by(Issue.number)
            )
            if actor.username not in {i.created_by, i.updated_by}
        ]
        back: list[dict[str, Any]] = []
        for i in s.scalars(select(Issue).where(Issue.status == "draft")):
            last = s.scalar(
                select(AuditLog)
                .where(AuditLog.target == f"issue:{i.id}", AuditLog.action.like("issue.%"))
                .order_by(AuditLog.id.desc())
                .limit(1)
            )
            if (
                last is not None
                and last.action == "issue.request_changes"
                and (last.detail or {}).get("author") == actor.username
            ):
                by = _names(s, {last.actor})[last.actor]
                back.append({**issue_summary(i), "note": last.detail.get("note", ""), "by": by})
        return {"waiting": waiting, "sent_back": back}
