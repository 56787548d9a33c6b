"""What the console and the JSON API do, as plain functions over the library.

Both the HTML pages (``routes.py``) and the JSON API (``api.py``) call these,
so the two can never disagree.  Every function that changes something takes
the acting :class:`~.auth.Principal` and writes the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import func, select

from ...audience.segments import count as segment_count
from ...audience.segments import validate as validate_segment
from ...audience.service import get_list, suppress, unsuppress
from ...config import get_settings
from ...csvsafe import writer as csv_writer
from ...db import session_scope
from ...errors import NewsletterError, NotFound, ServiceUnavailable, StateError
from ...issues import context_for, create_issue, get_issue, parse_stored, render_issue
from ...models import (
    AuditLog,
    Delivery,
    Issue,
    MailingList,
    Publication,
    Rendition,
    RollupHourly,
    Segment,
    Send,
    Subscriber,
    Subscription,
    Suppression,
    utcnow,
)
from ..auth_models import ROLES, ApiToken, User
from .auth import Principal, hash_password, new_api_token, record

__all__ = ["ConsoleError"]


class ConsoleError(NewsletterError):
    """A console request was refused; the message says why (shown to the user)."""


# -- issues ----------------------------------------------------------------------

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
) -> dict[str, Any]:
    """Store an uploaded (or pasted) issue source as a draft; returns the issue summary."""
    from ...content.parser import parse_issue

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
            from ...content.parser import decode_source

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
        issue, warnings = create_issue(s, path, actor=actor.username)
        record(s, actor, "issue.upload", f"issue:{issue.id}", request, number=issue.number,
               source_hash=issue.source_hash)
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


def load_issue_row(issue_id: int) -> dict[str, Any]:
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        if issue is None:
            raise NotFound(f"issue {issue_id} does not exist / 期刊不存在")
        return issue_summary(issue)


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
            r.output: {"bytes": r.size_bytes, "chars": r.size_chars, "mode": r.mode,
                       "subject": r.subject}
            for r in rows
        }
    wechat = sorted((k for k in outputs if k.startswith("wechat-")), key=lambda k: int(k[7:]))
    return {"outputs": outputs, "wechat": wechat}


def _personalise(doc: str) -> str:
    return (doc.replace("%%NAME%%", "示例读者").replace("%%TOKEN%%", "preview")
            .replace("%%UNSUB%%", "preview"))


def frame_html(issue_id: int, output: str, variant: str = "zh-Hans") -> str:
    """One output as a reader sees it (slots filled with sample values)."""
    import html as _html

    variant = variant if variant in ("zh-Hans", "zh-Hant") else "zh-Hans"
    if output == "digest":
        from ...content.variants import to_variant
        from ...render.email import render_email_html

        with session_scope() as s:
            issue = s.get(Issue, issue_id)
            if issue is None:
                raise NotFound(f"issue {issue_id} does not exist / 期刊不存在")
            pub = s.get(Publication, issue.publication_id)
            assert pub is not None
            doc = to_variant(parse_stored(issue), variant)
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
        return ("<!doctype html><meta charset='utf-8'><pre style='white-space:pre-wrap;"
                "font-family:monospace;padding:12px'>" + _html.escape(_personalise(body))
                + "</pre>")
    return _personalise(body)


_lint_cache: dict[tuple[str, int, str, str], dict[str, Any]] = {}


def _dir_signature(base: str | None) -> str:
    """Names and sizes of the files next to the issue (images added later change the lint)."""
    if not base or not Path(base).is_dir():
        return ""
    files = sorted((str(p.relative_to(base)), p.stat().st_size)
                   for p in list(Path(base).rglob("*"))[:500] if p.is_file())
    return hashlib.sha256(repr(files).encode()).hexdigest()


def lint(issue_id: int) -> dict[str, Any]:
    """Lint messages (with line numbers) and every channel's size budget."""
    from ...issuelint import full_lint

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


def approve_issue(actor: Principal, issue_id: int, request: Request | None = None) -> dict[str, Any]:
    from ...schedule import approve

    with session_scope() as s:
        issue = get_issue(s, issue_id)
        approve(s, issue, actor.username)  # writes "issue.approve" to the audit log
        record(s, actor, "console.approve", f"issue:{issue.id}", request)
        return issue_summary(issue)


def test_send(
    actor: Principal, issue_id: int, to: list[str], variant: str, request: Request | None = None
) -> list[dict[str, Any]]:
    from ...delivery.testsend import send_test

    to = [a.strip() for a in to if a.strip()]
    if not to:
        raise ConsoleError("give at least one address / 请填写收件地址")
    if len(to) > 10:
        raise ConsoleError("at most 10 test addresses / 最多 10 个测试地址")
    if variant not in ("zh-Hans", "zh-Hant", "both"):
        raise ConsoleError("variant must be zh-Hans, zh-Hant or both")
    results = send_test(str(issue_id), to, variant)
    with session_scope() as s:
        record(s, actor, "send.test", f"issue:{issue_id}", request, to=to, variant=variant,
               results=[r["state"] for r in results])
    return results


# -- sends -----------------------------------------------------------------------


def lists(counts: bool = True) -> list[dict[str, Any]]:
    """Lists; with member counts only where a page shows them (a count scans the list)."""
    with session_scope() as s:
        counts_by_list: dict[int, int] = {}
        if counts:
            counts_by_list = dict(
                s.execute(
                    select(Subscription.list_id, func.count())
                    .where(Subscription.status == "active")
                    .group_by(Subscription.list_id)
                ).all()
            )
        return [
            {"id": m.id, "name": m.name, "description": m.description,
             "double_opt_in": m.double_opt_in,
             "active": int(counts_by_list.get(m.id, 0)) if counts else None}
            for m in s.scalars(select(MailingList).order_by(MailingList.name))
        ]


def _list_id(s: Any, list_ref: str | int) -> int:
    if isinstance(list_ref, int) or str(list_ref).isdigit():
        ml = s.get(MailingList, int(list_ref))
        if ml is None:
            raise NotFound(f"list {list_ref} does not exist / 列表不存在")
        return int(ml.id)
    return int(get_list(s, str(list_ref)).id)


def create_send(
    actor: Principal,
    issue_id: int,
    list_ref: str | int,
    *,
    variant_rule: str = "preference",
    segment_id: int | None = None,
    at: dt.datetime | None = None,
    schedule: bool = False,
    request: Request | None = None,
) -> dict[str, Any]:
    """A draft send (to start now), or a scheduled one (``schedule``: at ``at`` or the next slot)."""
    from ...schedule import schedule_send

    if variant_rule not in ("preference", "zh-Hans", "zh-Hant"):
        raise ConsoleError("variant must be preference, zh-Hans or zh-Hant")
    with session_scope() as s:
        try:  # ids in the request body that name nothing are a data error (422), not a 404
            issue = get_issue(s, issue_id)
            list_id = _list_id(s, list_ref)
        except NotFound as exc:
            raise ConsoleError(str(exc)) from exc
        if segment_id is not None and s.get(Segment, segment_id) is None:
            raise ConsoleError(f"segment {segment_id} does not exist / 分群不存在")
        if schedule:
            send = schedule_send(s, issue, list_id=list_id, at=at, variant_rule=variant_rule,
                                 actor=actor.username)
            if segment_id:
                send.segment_id = segment_id
        else:
            if issue.status not in ("approved", "scheduled", "sent"):
                raise StateError(
                    f"issue {issue.number} is {issue.status}; approve it first / 请先审核通过"
                )
            send = Send(publication_id=issue.publication_id, issue_id=issue.id, list_id=list_id,
                        segment_id=segment_id or None, channel="email", variant_rule=variant_rule,
                        state="draft", created_by=actor.username)
            s.add(send)
            s.flush()
        record(s, actor, "send.create", f"send:{send.id}", request, issue=issue.number,
               list_id=list_id, scheduled=schedule, slot=send.slot)
        return send_row(s, send)


def send_row(s: Any, send: Send) -> dict[str, Any]:
    issue = s.get(Issue, send.issue_id)
    ml = s.get(MailingList, send.list_id) if send.list_id else None
    return {
        "id": send.id,
        "issue_id": send.issue_id,
        "issue": issue.number if issue else None,
        "title": issue.title if issue else "",
        "channel": send.channel,
        "list": ml.name if ml else None,
        "state": send.state,
        "slot": send.slot,
        "scheduled_at": send.scheduled_at.isoformat() if send.scheduled_at else None,
        "started_at": send.started_at.isoformat() if send.started_at else None,
        "finished_at": send.finished_at.isoformat() if send.finished_at else None,
        "planned": send.planned_count,
        "excluded": send.excluded_count,
        "error": send.error,
        "created_by": send.created_by,
    }


def list_sends(limit: int = 100, issue_id: int | None = None) -> list[dict[str, Any]]:
    with session_scope() as s:
        q = select(Send).order_by(Send.id.desc()).limit(limit)
        if issue_id is not None:
            q = q.where(Send.issue_id == issue_id)
        return [send_row(s, sd) for sd in s.scalars(q)]


_runners: dict[int, threading.Thread] = {}


def _run_inline(send_id: int) -> None:
    from ...delivery.run import drive_inline

    t = _runners.get(send_id)
    if t is not None and t.is_alive():
        return
    t = threading.Thread(target=_drive, args=(send_id, drive_inline), daemon=True,
                         name=f"send-{send_id}")
    _runners[send_id] = t
    t.start()


def _drive(send_id: int, drive: Any) -> None:
    import logging

    try:
        drive(send_id)
    except Exception:  # the send's state says what happened; the thread must not die loudly
        logging.getLogger(__name__).exception("send %s: in-process run failed", send_id)


def control_send(
    actor: Principal, send_id: int, action: str, request: Request | None = None
) -> dict[str, Any]:
    """start | pause | resume | cancel."""
    from ...delivery.sends import transition

    if action not in ("start", "pause", "resume", "cancel"):
        raise ConsoleError(f"unknown action {action!r}")
    cfg = get_settings()
    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None:
            raise NotFound(f"send {send_id} does not exist / 发送任务不存在")
        if action == "start":
            if send.state not in ("draft", "scheduled"):
                raise StateError(f"send {send_id} is {send.state}; cannot start / 无法开始")
            issue = s.get(Issue, send.issue_id)
            if issue is None or issue.status not in ("approved", "scheduled", "sent"):
                raise StateError("the issue is not approved / 期刊尚未审核通过")
        else:
            transition(s, send_id, action)
            record(s, actor, f"send.{action}", f"send:{send_id}", request)
    if action == "start" or action == "resume":
        if cfg.embedded:
            _run_inline(send_id)
        else:
            from ...dispatch import dispatcher

            try:
                if action == "start":
                    dispatcher().start_send(send_id)
                else:
                    dispatcher().run_batches(send_id, cfg.send_parallelism)
            except NewsletterError:
                raise
            except Exception as exc:  # broker down: say so; nothing was started
                raise ServiceUnavailable(
                    f"the message broker is unreachable; send {send_id} was not {action}ed "
                    "/ 无法连接消息代理，未能开始发送"
                ) from exc
    if action == "start":
        # Audited only once it really started (queued to the workers or run here).
        with session_scope() as s:
            record(s, actor, "send.start", f"send:{send_id}", request)
    return progress(send_id)


def progress(send_id: int) -> dict[str, Any]:
    from ...delivery.sends import state_counts

    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None:
            raise NotFound(f"send {send_id} does not exist / 发送任务不存在")
        counts = state_counts(s, send_id)
        row = send_row(s, send)
        wx_id = s.scalar(
            select(Send.id)
            .where(Send.issue_id == send.issue_id, Send.channel == "wechat")
            .order_by(Send.id.desc())
        ) if send.channel == "email" else send.id
    done = counts["sent"] + counts["bounced"] + counts["failed"] + counts["skipped"]
    total = sum(counts.values())
    remaining = counts["queued"] + counts["sending"] + counts["deferred"]
    if total:
        pct = round(100.0 * done / total, 1)
    else:
        pct = 100.0 if row["state"] == "finished" else 0.0
    elapsed = None
    rate = None
    if send.started_at:
        end = send.finished_at or utcnow()
        elapsed = max((end - send.started_at).total_seconds(), 0.001)
        rate = round(done / elapsed, 2)
    wechat: dict[str, Any] | None = None
    if wx_id is not None:
        try:
            from ...wechat.publisher import status as wx_status

            wechat = wx_status(int(wx_id))
        except Exception as exc:  # WeChat state is informative; never break the progress view
            wechat = {"state": "unknown", "error": str(exc)}
    # "pausing" until every worker has let go: paused or cancelled, yet a message is
    # still in an SMTP transaction (at most one per open connection).
    pausing = row["state"] in ("paused", "cancelled") and counts["sending"] > 0
    with session_scope() as s:
        at_risk = s.scalar(
            select(func.count()).where(Delivery.send_id == send_id, Delivery.at_risk.is_(True))
        )
    return {**row, "counts": counts, "done": done, "total": total, "remaining": remaining,
            "percent": pct, "rate_per_second": rate, "elapsed_seconds": elapsed,
            "pausing": pausing, "at_risk": int(at_risk or 0), "error": send.error,
            "already_received": send.already_received,
            "wechat": wechat, "at": utcnow().isoformat()}


# -- subscribers -----------------------------------------------------------------


def search_subscribers(q: str = "", list_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    limit = max(1, min(limit, 200))
    with session_scope() as s:
        stmt = select(Subscriber).where(Subscriber.status != "erased")
        if q:
            # Prefix match on the address uses the unique index; names need a scan, so only
            # short queries with CJK characters search names.
            like = q.strip().lower().replace("%", r"\%").replace("_", r"\_")
            if re.search(r"[\u4e00-\u9fff]", q):
                stmt = stmt.where(Subscriber.name.like(f"%{like}%", escape="\\"))
            else:
                stmt = stmt.where(Subscriber.email.like(f"{like}%", escape="\\"))
        if list_id:
            stmt = stmt.join(Subscription, (Subscription.subscriber_id == Subscriber.id)
                             & (Subscription.list_id == list_id))
        rows = s.scalars(stmt.order_by(Subscriber.id).limit(limit)).all()
        supp = set(s.scalars(select(Suppression.email).where(
            Suppression.email.in_([r.email for r in rows])
        )))
        return [
            {"id": r.id, "email": r.email, "name": r.name, "variant": r.variant,
             "status": r.status, "suppressed": r.email in supp,
             "created_at": r.created_at.isoformat()}
            for r in rows
        ]


@dataclass
class ImportJob:
    id: str
    actor: str
    list_name: str
    filename: str
    total_rows: int
    state: str = "queued"  # queued | running | done | failed
    started: float = field(default_factory=time.time)
    finished: float | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    report: str | None = None

    def as_dict(self) -> dict[str, Any]:
        pct = 100.0 if self.state in ("done", "failed") else (5.0 if self.state == "queued" else 50.0)
        return {"id": self.id, "state": self.state, "list": self.list_name,
                "file": self.filename, "total_rows": self.total_rows, "percent": pct,
                "summary": self.summary, "error": self.error,
                "has_report": bool(self.report),
                "seconds": round((self.finished or time.time()) - self.started, 2)}


_jobs: dict[str, ImportJob] = {}
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def start_import(
    actor: Principal, list_name: str, filename: str, data: bytes, *, resubscribe: bool = False,
    request: Request | None = None, wait: bool = False,
) -> ImportJob:
    from ...audience.importer import import_file

    list_name = list_name.strip()
    if not list_name:
        raise ConsoleError("choose a list / 请选择列表")
    if not data:
        raise ConsoleError("the file is empty / 文件为空")
    suffix = Path(filename or "upload.csv").suffix.lower()
    if suffix not in (".csv", ".txt", ".xlsx", ".tsv"):
        suffix = ".csv"
    job_id = secrets.token_urlsafe(12)
    d = get_settings().var_dir / "console" / "imports"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{job_id}{suffix}"
    path.write_bytes(data)
    total = data.count(b"\n") if suffix != ".xlsx" else 0
    job = ImportJob(job_id, actor.username, list_name, Path(filename or "upload").name, total)
    _jobs[job_id] = job
    with session_scope() as s:
        record(s, actor, "console.import", list_name, request, file=job.filename, job=job_id,
               resubscribe=resubscribe)

    def run() -> None:
        job.state = "running"
        try:
            summary = import_file(path, list_name, resubscribe=resubscribe, actor=actor.username,
                                  report_path=d / f"{job_id}.errors.csv")
            job.summary = summary.as_dict()
            job.summary.pop("report_path", None)
            job.summary.pop("file", None)
            job.report = summary.report_path
            job.state = "done"
        except Exception as exc:
            job.error = str(exc)
            job.state = "failed"
        finally:
            job.finished = time.time()

    if wait:
        run()
    else:
        threading.Thread(target=run, daemon=True, name=f"import-{job_id}").start()
    return job


def get_job(job_id: str) -> ImportJob:
    job = _jobs.get(job_id) if _JOB_ID.match(job_id) else None
    if job is None:
        raise NotFound("import job not found / 导入任务不存在")
    return job


def export_list(actor: Principal, list_id: int, request: Request | None = None) -> Iterator[bytes]:
    from ...audience.export import iter_csv

    with session_scope() as s:
        ml = s.get(MailingList, list_id)
        if ml is None:
            raise NotFound(f"list {list_id} does not exist / 列表不存在")
        record(s, actor, "subscribers.export", ml.name, request, list_id=list_id)
    return iter_csv(list_id)


def segments() -> list[dict[str, Any]]:
    with session_scope() as s:
        return [{"id": g.id, "name": g.name, "definition": g.definition}
                for g in s.scalars(select(Segment).order_by(Segment.name))]


def count_segment(definition: Any, list_id: int | None = None) -> int:
    with session_scope() as s:
        return segment_count(s, definition or None, list_id or None)


def save_segment(actor: Principal, name: str, definition: Any, request: Request | None = None) -> dict[str, Any]:
    name = name.strip()
    if not name:
        raise ConsoleError("name the segment / 请填写分群名称")
    validate_segment(definition)
    with session_scope() as s:
        seg = s.scalar(select(Segment).where(Segment.name == name))
        if seg is None:
            seg = Segment(name=name, definition=definition)
            s.add(seg)
        else:
            seg.definition = definition
        s.flush()
        record(s, actor, "segment.save", name, request, definition=definition)
        return {"id": seg.id, "name": seg.name, "definition": seg.definition}


def suppressions(q: str = "", limit: int = 100) -> list[dict[str, Any]]:
    with session_scope() as s:
        stmt = select(Suppression)
        if q:
            stmt = stmt.where(Suppression.email.like(q.strip().lower().replace("%", "") + "%"))
        return [
            {"email": r.email, "reason": r.reason, "note": r.note,
             "created_at": r.created_at.isoformat()}
            for r in s.scalars(stmt.order_by(Suppression.id.desc()).limit(max(1, min(limit, 500))))
        ]


def add_suppression(actor: Principal, email: str, note: str, request: Request | None = None) -> bool:
    with session_scope() as s:
        added = suppress(s, email, "manual", note=note[:1000])
        record(s, actor, "suppression.add", email, request, note=note)
        return added


def remove_suppression(actor: Principal, email: str, request: Request | None = None) -> bool:
    with session_scope() as s:
        removed = unsuppress(s, email)
        record(s, actor, "suppression.remove", email, request)
        return removed


# -- statistics ------------------------------------------------------------------


def stats(send_id: int) -> dict[str, Any]:
    from ...tracking.stats import send_stats

    with session_scope() as s:
        data = send_stats(s, send_id)
        send = s.get(Send, send_id)
        assert send is not None
        unsub = 0
        if send.started_at and send.list_id:
            unsub = s.scalar(
                select(func.count()).where(
                    Subscription.list_id == send.list_id,
                    Subscription.unsubscribed_at >= send.started_at,
                )
            ) or 0
        data["unsubscribes"] = int(unsub)
        data["bounces"] = data.get("deliveries_bounced", 0)
        data["issue_id"] = send.issue_id
        data["started_at"] = send.started_at.isoformat() if send.started_at else None
    try:
        from ...wechat.stats import issue_totals

        data["wechat"] = issue_totals(data["issue_id"])
    except Exception:  # no WeChat statistics yet
        data["wechat"] = None
    return data


def trends(limit: int = 100) -> list[dict[str, Any]]:
    """Per send (email, started), oldest first: planned, unique opens/clicks and their rates.

    Read from the send rows and the hourly rollups only, so it stays fast with
    millions of deliveries; rates are relative to the planned deliveries.
    """
    with session_scope() as s:
        sends = s.execute(
            select(Send.id, Send.planned_count, Send.started_at, Issue.number, Issue.title)
            .join(Issue, Issue.id == Send.issue_id)
            .where(Send.channel == "email", Send.started_at.is_not(None))
            .order_by(Send.id.desc())
            .limit(limit)
        ).all()
        ids = [r.id for r in sends]
        agg: dict[tuple[int, str], int] = {}
        if ids:
            for sid, kind, uniq in s.execute(
                select(RollupHourly.send_id, RollupHourly.kind, func.sum(RollupHourly.uniq))
                .where(RollupHourly.send_id.in_(ids), RollupHourly.cls != "machine")
                .group_by(RollupHourly.send_id, RollupHourly.kind)
            ):
                agg[(int(sid), str(kind))] = int(uniq or 0)
    from ...wechat.stats import all_issue_totals, wechat_only_issues

    send_issue = _send_issues(ids)
    wechat = all_issue_totals()
    out = []
    for r in reversed(sends):
        opens, clicks = agg.get((r.id, "open"), 0), agg.get((r.id, "click"), 0)
        w = wechat.get(send_issue.get(r.id, -1), {})
        out.append({
            "send_id": r.id, "issue": r.number, "title": r.title, "planned": r.planned_count,
            "started_at": r.started_at.isoformat() if r.started_at else None,
            "channels": "email", "opens_unique": opens, "clicks_unique": clicks,
            "open_rate": round(opens / r.planned_count, 4) if r.planned_count else 0.0,
            "click_rate": round(clicks / r.planned_count, 4) if r.planned_count else 0.0,
            "wechat_reads": w.get("reads", 0), "wechat_readers": w.get("readers", 0),
            "wechat_shares": w.get("shares", 0),
        })
    for row in wechat_only_issues(set(send_issue.values()))[-limit:]:  # issues sent only to WeChat
        w = wechat.get(row["issue_id"], {})
        out.append({
            "send_id": row["send_id"], "issue": row["issue"], "title": row["title"],
            "planned": 0, "started_at": row["sent_date"], "channels": "wechat",
            "opens_unique": 0, "clicks_unique": 0, "open_rate": None, "click_rate": None,
            "wechat_reads": w.get("reads", 0), "wechat_readers": w.get("readers", 0),
            "wechat_shares": w.get("shares", 0),
        })
    out.sort(key=lambda r: str(r["started_at"] or ""))
    return out


def _send_issues(ids: list[int]) -> dict[int, int]:
    """send id → issue id."""
    if not ids:
        return {}
    with session_scope() as s:
        return {int(a): int(b) for a, b in s.execute(
            select(Send.id, Send.issue_id).where(Send.id.in_(ids)))}


def _csv_names(zh: bool) -> Callable[[str], str]:
    """Column and metric names: the English keys, or Chinese ones (``zh``)."""
    from .i18n import CSV_ZH

    if not zh:
        return lambda k: k
    return lambda k: CSV_ZH.get(k) or (
        "公众号" + CSV_ZH.get(k[7:], k[7:]) if k.startswith("wechat_") else k)


def stats_csv(
    actor: Principal, send_id: int, request: Request | None = None, zh: bool = False
) -> bytes:
    data = stats(send_id)
    buf = io.StringIO()
    w = _Named(csv_writer(buf), _csv_names(zh))  # formula cells neutralised (OWASP)
    w.names(["metric", "value"])
    for k, v in data.items():
        if isinstance(v, (int, float, str)) or v is None:
            w.writerow([w.name(k), "" if v is None else v])
    wx = data.get("wechat") or {}
    for k in ("reads", "readers", "shares"):  # the WeChat figures, as `newsletter stats` shows
        w.writerow([w.name(f"wechat_{k}"), wx.get(k, 0)])
    w.writerow([])
    w.names(["hour", "opens"])
    for hour, n in data["opens_by_hour"]:
        w.writerow([hour, n])
    w.writerow([])
    w.names(["link_position", "url", "clicks", "unique"])
    for link in data["links"]:
        w.writerow([link["position"], link["url"], link["clicks"], link["unique"]])
    with session_scope() as s:
        record(s, actor, "stats.export", f"send:{send_id}", request)
    return "\ufeff".encode() + buf.getvalue().encode()


class _Named:
    """A CSV writer that also writes header rows through a naming function."""

    def __init__(self, writer: Any, name: Callable[[str], str]) -> None:
        self.writer, self.name = writer, name

    def writerow(self, row: list[Any]) -> None:
        self.writer.writerow(row)

    def names(self, keys: list[str]) -> None:
        self.writer.writerow([self.name(k) for k in keys])


def trends_csv(actor: Principal, request: Request | None = None, zh: bool = False) -> bytes:
    rows = trends()
    buf = io.StringIO()
    w = _Named(csv_writer(buf), _csv_names(zh))  # formula cells neutralised (OWASP)
    cols = ["send_id", "issue", "title", "channels", "started_at", "planned", "opens_unique",
            "clicks_unique", "open_rate", "click_rate", "wechat_reads", "wechat_readers",
            "wechat_shares"]
    w.names(cols)
    for r in rows:
        w.writerow(["" if r[c] is None else r[c] for c in cols])
    with session_scope() as s:
        record(s, actor, "stats.export", "trends", request)
    return "\ufeff".encode() + buf.getvalue().encode()


# -- settings, users, tokens -----------------------------------------------------


def publication() -> dict[str, Any] | None:
    with session_scope() as s:
        pub = s.scalars(select(Publication).order_by(Publication.id)).first()
        if pub is None:
            return None
        return {c: getattr(pub, c) for c in (
            "id", "slug", "name", "from_name", "from_address", "reply_to", "list_id_domain",
            "postal_address", "timezone", "schedule_weekday", "schedule_time", "track_opens",
            "track_clicks", "default_list_id", "zh_hant_table")}


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def update_publication(actor: Principal, values: dict[str, Any], request: Request | None = None) -> dict[str, Any]:
    with session_scope() as s:
        pub = s.scalars(select(Publication).order_by(Publication.id)).first()
        if pub is None:
            raise NotFound("no publication yet; upload an issue first / 尚无刊物，请先上传一期")
        changed: dict[str, Any] = {}
        for key in ("name", "from_name", "from_address", "reply_to", "postal_address"):
            if key in values and values[key] is not None:
                v = str(values[key]).strip()
                if key in ("from_address", "reply_to") and v and not _EMAIL.match(v):
                    raise ConsoleError(f"{key}: not an email address / 邮箱格式不正确")
                if key == "reply_to" and not v:
                    pub.reply_to = None
                else:
                    setattr(pub, key, v)
                changed[key] = v
        for key in ("track_opens", "track_clicks"):
            if key in values and values[key] is not None:
                setattr(pub, key, bool(values[key]))
                changed[key] = bool(values[key])
        table = values.get("zh_hant_table")
        if table:
            if table not in ("s2t", "s2hk", "s2tw"):
                raise ConsoleError("zh_hant_table: expected s2t, s2hk or s2tw / 繁体转换表无效")
            pub.zh_hant_table = table
            changed["zh_hant_table"] = table
        record(s, actor, "settings.publication", pub.slug, request, **changed)
    out = publication()
    assert out is not None
    return out


def update_schedule(actor: Principal, weekday: int, time_: str, tz: str, default_list: str | None,
                    request: Request | None = None) -> dict[str, Any]:
    from ...schedule import set_schedule

    with session_scope() as s:
        pub = s.scalars(select(Publication).order_by(Publication.id)).first()
        if pub is None:
            raise NotFound("no publication yet; upload an issue first / 尚无刊物，请先上传一期")
        set_schedule(s, pub, weekday=weekday, time=time_, tz=tz, default_list=default_list or None,
                     actor=actor.username)
    out = publication()
    assert out is not None
    return out


def sender_identity() -> dict[str, Any]:
    from ...delivery.dkim import DkimSettings, dns_zone_line

    cfg = get_settings()
    dk = DkimSettings()
    record_line = None
    problem = None
    if dk.key_file is not None:
        try:
            record_line = dns_zone_line(dk.selector, dk.domain, dk.key_file.read_bytes())
        except (OSError, ValueError) as exc:
            problem = str(exc)
    return {"smtp_host": cfg.smtp_host, "smtp_port": cfg.smtp_port,
            "from_address": cfg.from_address, "bounce_domain": cfg.bounce_domain,
            "dkim_domain": dk.domain, "dkim_selector": dk.selector,
            "dkim_record": record_line, "dkim_problem": problem,
            "mode": "embedded" if cfg.embedded else "broker",
            "track_opens": cfg.track_opens, "track_clicks": cfg.track_clicks}


def wechat_check(actor: Principal, request: Request | None = None) -> dict[str, Any]:
    from ...wechat.settings import get_wechat_settings

    wx = get_wechat_settings()
    if not wx.configured:
        return {"ok": False, "configured": False,
                "message": "WeChat is not configured (NEWSLETTER_WECHAT_APPID/SECRET) / 未配置公众号"}
    from ...wechat.client import WeChatClient

    out: dict[str, Any] = {"configured": True, "appid": wx.appid}
    try:
        with WeChatClient() as client:
            client.token()
            out["ok"] = True
            try:
                out["mass_send_quota"] = client.quota("/cgi-bin/message/mass/sendall")
            except NewsletterError as exc:
                out["mass_send_quota"] = {"error": str(exc)}
    except NewsletterError as exc:
        out.update(ok=False, message=str(exc))
    with session_scope() as s:
        record(s, actor, "settings.wechat_check", wx.appid, request, ok=out.get("ok"))
    return out


def user_row(u: User) -> dict[str, Any]:
    return {"id": u.id, "username": u.username, "display_name": u.display_name, "role": u.role,
            "active": u.active, "source": u.auth_source, "created_at": u.created_at.isoformat(),
            "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None}


def list_users() -> list[dict[str, Any]]:
    with session_scope() as s:
        return [user_row(u) for u in s.scalars(select(User).order_by(User.username))]


def create_user(actor: Principal | str, username: str, password: str, role: str,
                display_name: str = "", request: Request | None = None) -> dict[str, Any]:
    username = username.strip().lower()
    if not re.fullmatch(r"[\w.@+-]{2,320}", username):
        raise ConsoleError("user names use letters, digits and . @ + - _ / 用户名格式不正确")
    if role not in ROLES:
        raise ConsoleError(f"role must be one of {', '.join(ROLES)} / 角色无效")
    try:
        hashed = hash_password(password, (username, display_name))
    except ValueError as exc:
        raise ConsoleError(str(exc)) from exc
    with session_scope() as s:
        if s.scalar(select(User.id).where(User.username == username)) is not None:
            raise ConsoleError(f"user {username} exists / 用户已存在")
        u = User(username=username, display_name=display_name.strip(), password_hash=hashed,
                 role=role)
        s.add(u)
        s.flush()
        record(s, actor, "user.create", username, request, role=role)
        return user_row(u)


def update_user(actor: Principal, user_id: int, *, role: str | None = None,
                active: bool | None = None, password: str | None = None,
                request: Request | None = None) -> dict[str, Any]:
    with session_scope() as s:
        u = s.get(User, user_id)
        if u is None:
            raise NotFound("user not found / 用户不存在")
        if u.id == actor.user_id and (active is False or (role and role != "admin")):
            raise ConsoleError("you cannot demote or deactivate yourself / 不能降级或停用自己")
        detail: dict[str, object] = {}
        if role is not None:
            if role not in ROLES:
                raise ConsoleError("role is invalid / 角色无效")
            u.role, detail["role"] = role, role
        if active is not None:
            u.active, detail["active"] = active, active
        if password:
            try:
                u.password_hash = hash_password(password, (u.username, u.display_name))
            except ValueError as exc:
                raise ConsoleError(str(exc)) from exc
            detail["password"] = "changed"
        u.session_version += 1  # any change logs the user out everywhere
        record(s, actor, "user.update", u.username, request, **detail)
        return user_row(u)


def tokens(user_id: int) -> list[dict[str, Any]]:
    with session_scope() as s:
        return [
            {"id": t.id, "name": t.name, "prefix": t.prefix,
             "created_at": t.created_at.isoformat(),
             "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
             "expires_at": t.expires_at.isoformat() if t.expires_at else None,
             "revoked": t.revoked_at is not None}
            for t in s.scalars(select(ApiToken).where(ApiToken.user_id == user_id)
                               .order_by(ApiToken.id.desc()))
        ]


def create_token(actor: Principal | str, user_id: int, name: str, days: int | None = 90,
                 request: Request | None = None) -> dict[str, Any]:
    token, prefix, digest = new_api_token()
    with session_scope() as s:
        u = s.get(User, user_id)
        if u is None:
            raise NotFound("user not found / 用户不存在")
        t = ApiToken(user_id=user_id, name=name.strip()[:200], prefix=prefix, token_hash=digest,
                     expires_at=utcnow() + dt.timedelta(days=days) if days else None)
        s.add(t)
        s.flush()
        record(s, actor, "token.create", u.username, request, token_id=t.id, name=t.name)
        return {"id": t.id, "name": t.name, "prefix": prefix, "token": token,
                "expires_at": t.expires_at.isoformat() if t.expires_at else None}


def revoke_token(actor: Principal, token_id: int, request: Request | None = None) -> None:
    with session_scope() as s:
        t = s.get(ApiToken, token_id)
        if t is None or (t.user_id != actor.user_id and actor.role != "admin"):
            raise NotFound("token not found / 令牌不存在")
        if t.revoked_at is None:
            t.revoked_at = utcnow()
        record(s, actor, "token.revoke", f"token:{token_id}", request)


def audit_entries(limit: int = 100) -> list[dict[str, Any]]:
    with session_scope() as s:
        return [
            {"at": a.at.isoformat(), "actor": a.actor, "action": a.action, "target": a.target,
             "detail": a.detail, "remote": a.remote}
            for a in s.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit))
        ]


def dashboard() -> dict[str, Any]:
    with session_scope() as s:
        return {
            "issues": s.scalar(select(func.count()).select_from(Issue)) or 0,
            "sends": s.scalar(select(func.count()).select_from(Send)) or 0,
            "lists": s.scalar(select(func.count()).select_from(MailingList)) or 0,
            "suppressions": s.scalar(select(func.count()).select_from(Suppression)) or 0,
        }


#: Notifications that need a person's attention, shown as a banner on every console page.
ALERT_EVENTS = ("notify.auto_paused", "notify.auto_resume_gave_up", "notify.failed")


def open_alerts(hours: int = 24) -> list[dict[str, Any]]:
    """Alerts of the last ``hours`` whose send is still paused or failed (newest first).

    They come from the audit log, so they show even when the relay that would
    have mailed them is down.
    """
    since = utcnow() - dt.timedelta(hours=hours)
    out: list[dict[str, Any]] = []
    with session_scope() as s:
        rows = s.scalars(
            select(AuditLog)
            .where(AuditLog.action.in_(ALERT_EVENTS), AuditLog.at >= since)
            .order_by(AuditLog.id.desc())
            .limit(20)
        ).all()
        seen: set[int] = set()
        for row in rows:
            m = re.search(r"(\d+)", row.target or "")
            send_id = int(m.group(1)) if m else None
            if send_id is None or send_id in seen:
                continue
            seen.add(send_id)
            send = s.get(Send, send_id)
            if send is None or send.state not in ("paused", "failed"):
                continue
            out.append({
                "send_id": send_id, "state": send.state,
                "subject": str((row.detail or {}).get("subject", "")),
                "body": str((row.detail or {}).get("body", ""))[:300],
            })
    return out


# -- plain-text import (outline, reclassify, save) -------------------------------


def import_preview(data: bytes, hints: dict[int, str], number: int | None) -> dict[str, Any]:
    """Import a pasted or uploaded brief: the outline, the report and the Markdown.

    Nothing is stored; :func:`upload_issue` stores the Markdown once the editor
    is satisfied.  ``hints`` are the editor's reclassifications (line → class).
    """
    from ...content.parser import decode_source
    from ...content.textimport import import_text

    if len(data) > 5_000_000:
        raise ConsoleError("the file is larger than 5 MB / 文件超过 5 MB")
    text, warnings = decode_source(data, path="import.txt")
    result = import_text(text, front_matter={"number": number}, hints=hints)
    return {
        "text": text,
        "markdown": result.markdown,
        "outline": result.outline,
        "chrome": result.chrome,
        "contents": result.contents,
        "warnings": warnings + result.warnings,
        "script": result.script,
        "hints": hints,
    }



def send_now_facts(issue_id: int, list_id: int, segment_id: str, variant: str) -> dict[str, Any]:
    """What "send now" would do: the issue, the audience and its count, for the confirmation."""
    from ...delivery.sends import audience
    from ...models import Segment

    seg = int(segment_id) if segment_id.isdigit() else None
    with session_scope() as s:
        issue = get_issue(s, issue_id)
        ml = s.get(MailingList, list_id)
        if ml is None:
            raise ConsoleError("the list does not exist / 列表不存在")
        segment = s.get(Segment, seg) if seg is not None else None
        count, already = audience(s, issue_id=issue.id, list_id=ml.id, segment_id=seg)
        return {
            "issue_id": issue.id, "number": issue.number, "title": issue.title,
            "status": issue.status, "list_id": ml.id, "list_name": ml.name,
            "segment_id": seg, "segment_name": segment.name if segment else None,
            "variant": variant, "count": count, "already": already,
        }


# -- lists and subscribers: create, edit, delete, bulk actions (ops) --------------------

VARIANTS = ("zh-Hans", "zh-Hant")
BULK_ACTIONS = ("unsubscribe", "move", "block", "delete")
BULK_LIMIT = 1000


def _list_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ConsoleError("列表名称不能为空 / the list needs a name")
    if len(name) > 200:
        raise ConsoleError("列表名称最多 200 个字符 / list name: at most 200 characters")
    return name


def create_list(actor: Principal, name: str, description: str = "", double_opt_in: bool = True,
                request: Request | None = None) -> dict[str, Any]:
    name = _list_name(name)
    with session_scope() as s:
        if s.scalar(select(MailingList.id).where(MailingList.name == name)) is not None:
            raise ConsoleError(f"列表“{name}”已存在 / list {name!r} already exists")
        ml = MailingList(name=name, description=description.strip()[:1000],
                         double_opt_in=double_opt_in)
        s.add(ml)
        s.flush()
        record(s, actor, "list.create", f"list:{ml.id}", request, name=name,
               double_opt_in=double_opt_in)
        return {"id": ml.id, "name": ml.name}


def update_list(actor: Principal, list_id: int, name: str, description: str = "",
                double_opt_in: bool = True, request: Request | None = None) -> dict[str, Any]:
    name = _list_name(name)
    with session_scope() as s:
        ml = s.get(MailingList, list_id)
        if ml is None:
            raise NotFound(f"列表 {list_id} 不存在 / list {list_id} does not exist")
        other = s.scalar(select(MailingList.id).where(MailingList.name == name,
                                                      MailingList.id != list_id))
        if other is not None:
            raise ConsoleError(f"列表“{name}”已存在 / list {name!r} already exists")
        before = ml.name
        ml.name, ml.description, ml.double_opt_in = name, description.strip()[:1000], double_opt_in
        record(s, actor, "list.update", f"list:{list_id}", request, name=name, before=before,
               double_opt_in=double_opt_in)
        return {"id": ml.id, "name": ml.name}


def delete_list(actor: Principal, list_id: int, request: Request | None = None) -> str:
    with session_scope() as s:
        ml = s.get(MailingList, list_id)
        if ml is None:
            raise NotFound(f"列表 {list_id} 不存在 / list {list_id} does not exist")
        if s.scalar(select(func.count()).select_from(Send).where(Send.list_id == list_id)):
            raise ConsoleError("该列表已有发送任务，不能删除 / the list has sends; it cannot be deleted")
        if s.scalar(select(func.count()).select_from(Publication)
                    .where(Publication.default_list_id == list_id)):
            raise ConsoleError("该列表是默认列表，不能删除 / it is the default list; choose another first")
        members = s.scalar(select(func.count()).select_from(Subscription)
                           .where(Subscription.list_id == list_id)) or 0
        name = ml.name
        s.delete(ml)  # subscriptions go with it (ON DELETE CASCADE); subscribers stay
        record(s, actor, "list.delete", f"list:{list_id}", request, name=name,
               subscriptions=int(members))
        return name


def get_subscriber(subscriber_id: int) -> dict[str, Any]:
    with session_scope() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None or sub.status == "erased":
            raise NotFound(f"订阅者 {subscriber_id} 不存在 / subscriber does not exist")
        subs = s.execute(
            select(MailingList.name, Subscription.status)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscription.subscriber_id == subscriber_id)
            .order_by(MailingList.name)
        ).all()
        return {"id": sub.id, "email": sub.email, "name": sub.name, "variant": sub.variant,
                "status": sub.status, "created_at": sub.created_at.isoformat(),
                "subscriptions": [{"list": n, "status": st} for n, st in subs]}


def update_subscriber(actor: Principal, subscriber_id: int, name: str, variant: str,
                      request: Request | None = None) -> None:
    if variant not in VARIANTS:
        raise ConsoleError("版本只能是 zh-Hans 或 zh-Hant / variant: zh-Hans or zh-Hant")
    name = " ".join((name or "").split())[:200]
    with session_scope() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None or sub.status == "erased":
            raise NotFound(f"订阅者 {subscriber_id} 不存在 / subscriber does not exist")
        before = {"name": sub.name, "variant": sub.variant}
        sub.name, sub.variant = name, variant
        record(s, actor, "subscriber.update", f"subscriber:{subscriber_id}", request,
               before=before, after={"name": name, "variant": variant})


def bulk_subscribers(actor: Principal, ids: list[int], action: str, *,
                     from_list: int | None = None, to_list: int | None = None,
                     request: Request | None = None) -> int:
    """Apply ``action`` to the chosen subscribers; returns how many changed.

    unsubscribe: from ``from_list`` (the search's list) or, without one, from everything
    (which also suppresses the address); move: into ``to_list`` (active), leaving
    ``from_list``; block: the subscriber is blocked and suppressed (manual); delete: erased
    (PIPL/GDPR: only a hashed suppression remains).  One audit entry names them all.
    """
    from ...audience.service import erase_subscriber, unsubscribe

    if action not in BULK_ACTIONS:
        raise ConsoleError("未知的批量操作 / unknown bulk action")
    ids = sorted({int(i) for i in ids})
    if not ids:
        raise ConsoleError("请先勾选订阅者 / tick at least one subscriber")
    if len(ids) > BULK_LIMIT:
        raise ConsoleError(f"一次最多 {BULK_LIMIT} 人 / at most {BULK_LIMIT} at a time")
    changed = 0
    with session_scope() as s:
        if action == "move":
            if to_list is None or s.get(MailingList, to_list) is None:
                raise ConsoleError("请选择目标列表 / choose the list to move them to")
            if to_list == from_list:
                raise ConsoleError("目标列表与当前列表相同 / that is the same list")
        rows = s.scalars(select(Subscriber).where(Subscriber.id.in_(ids),
                                                  Subscriber.status != "erased")).all()
        for sub in rows:
            if action == "unsubscribe":
                changed += 1 if unsubscribe(s, sub.id, from_list, reason="console") else 0
            elif action == "move":
                assert to_list is not None
                target = s.get(Subscription, (sub.id, to_list))
                if target is None:
                    s.add(Subscription(subscriber_id=sub.id, list_id=to_list, status="active"))
                else:
                    target.status, target.unsubscribed_at, target.reason = "active", None, None
                if from_list is not None:
                    old = s.get(Subscription, (sub.id, from_list))
                    if old is not None:
                        s.delete(old)
                changed += 1
            elif action == "block":
                if sub.status != "blocked":
                    sub.status = "blocked"
                    changed += 1
                suppress(s, sub.email, "manual", note="blocked in the console")
            else:
                erase_subscriber(s, sub.id, actor=actor.username)
                changed += 1
        s.flush()
        record(s, actor, "subscribers.bulk", f"{action}:{len(rows)}", request, bulk=action,
               ids=ids[:200], count=len(rows), changed=changed, from_list=from_list,
               to_list=to_list)
    return changed


# -- bounces and complaints ---------------------------------------------------------------

BOUNCE_REASONS = ("hard_bounce", "complaint")


def bounces(kind: str = "", page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """Recent hard bounces and complaints (newest first) with the receiver's reason and the
    send they came from, and the total."""
    from ...models import Delivery

    reasons = (kind,) if kind in BOUNCE_REASONS else BOUNCE_REASONS
    page = max(1, min(page, 10_000))
    with session_scope() as s:
        total = s.scalar(select(func.count()).select_from(Suppression)
                         .where(Suppression.reason.in_(reasons))) or 0
        rows = s.execute(
            select(Suppression, Delivery.send_id)
            .outerjoin(Delivery, Delivery.id == Suppression.delivery_id)
            .where(Suppression.reason.in_(reasons))
            .order_by(Suppression.id.desc())
            .limit(per_page).offset((page - 1) * per_page)
        ).all()
        return {
            "total": int(total), "page": page, "per_page": per_page,
            "rows": [{"email": r.email, "reason": r.reason, "note": r.note,
                      "send_id": send_id, "created_at": r.created_at.isoformat()}
                     for r, send_id in rows],
        }


def search_sends(q: str = "", state: str = "", page: int = 1,
                 per_page: int = 50) -> dict[str, Any]:
    """The sends list with a search (issue number, ``#47``, or words of the title), a state
    filter, paging and the total that matched."""
    q = q.strip().lstrip("#")[:100]
    page = max(1, min(page, 10_000))
    with session_scope() as s:
        stmt = select(Send)
        if q:
            if q.isdigit() and len(q) < 10:
                stmt = stmt.join(Issue, Issue.id == Send.issue_id).where(
                    (Issue.number == int(q)) | (Send.id == int(q)))
            else:
                like = q.replace("\\", "").replace("%", r"\%").replace("_", r"\_")
                stmt = stmt.join(Issue, Issue.id == Send.issue_id).where(
                    Issue.title.like(f"%{like}%", escape="\\"))
        if state:
            stmt = stmt.where(Send.state == state)
        total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = s.scalars(stmt.order_by(Send.id.desc()).limit(per_page)
                         .offset((page - 1) * per_page)).all()
        return {"total": int(total), "page": page, "per_page": per_page,
                "pages": max(1, -(-int(total) // per_page)),
                "rows": [send_row(s, sd) for sd in rows]}
