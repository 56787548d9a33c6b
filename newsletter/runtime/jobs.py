"""Background jobs: subscriber imports and bulk actions, run by a worker.

The console creates a :class:`~newsletter.models.Job` row and hands its id to
the dispatcher (:meth:`newsletter.core.dispatch.Dispatcher.run_job`): a Celery task in
production, a background thread in the embedded mode.  :func:`run` does the work
wherever it lands, writing progress to the row with every batch, so any web
process (or a restarted one) shows the same progress by reading the row.

States: ``queued`` → ``running`` → ``done`` or ``failed``.  A ``running`` job
whose heartbeat is older than :data:`STALE_SECONDS` lost its worker (killed,
restarted): :func:`sweep` marks it ``interrupted``, and :func:`resume` queues it
again: a bulk job goes on after the last batch it committed, an import starts
the file again (imports are idempotent, so it converges).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound, StateError
from newsletter.models import Job, utcnow

__all__ = [
    "BATCH",
    "STALE_SECONDS",
    "as_dict",
    "create",
    "fail",
    "get",
    "recent",
    "resume",
    "run",
    "sweep",
]

log = logging.getLogger(__name__)

#: Subscribers per bulk batch (one transaction, one progress write).
BATCH = 5000
#: File rows per import chunk (one transaction, one progress write).
IMPORT_CHUNK = 5000
#: A running job that has not written progress for this long lost its worker.
STALE_SECONDS = 300


def create(
    kind: str,
    actor: str,
    title: str,
    params: dict[str, Any],
    *,
    file: str | None = None,
    total: int | None = None,
) -> int:
    with session_scope() as s:
        job = Job(
            kind=kind,
            actor=actor,
            title=title[:300],
            params=params,
            file=file,
            total=total,
            state="queued",
            done=0,
            changed=0,
            attempts=0,
        )
        s.add(job)
        s.flush()
        return int(job.id)


def as_dict(job: Job) -> dict[str, Any]:
    total = job.total
    if job.state == "done":
        percent = 100.0
    elif total:
        percent = round(min(99.9, 100.0 * job.done / total), 1)
    else:
        percent = 0.0
    end = job.finished_at or utcnow()
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "actor": job.actor,
        "title": job.title,
        "params": job.params,
        "total": total,
        "done": job.done,
        "changed": job.changed,
        "percent": percent,
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "seconds": round((end - (job.started_at or job.created_at)).total_seconds(), 1),
        "has_report": bool((job.result or {}).get("report")),
    }


def _existing(s: Any, job_id: int) -> Job:
    job = s.get(Job, job_id)
    if job is None:
        raise NotFound(f"任务 {job_id} 不存在 / job {job_id} does not exist")
    return job


def get(job_id: int) -> dict[str, Any]:
    sweep()
    with session_scope() as s:
        job = _existing(s, job_id)
        return as_dict(job)


def recent(limit: int = 50) -> list[dict[str, Any]]:
    sweep()
    with session_scope() as s:
        return [as_dict(j) for j in s.scalars(select(Job).order_by(Job.id.desc()).limit(limit))]


def sweep(stale_seconds: int | None = None) -> int:
    """Mark running jobs without a recent heartbeat ``interrupted``; returns how many."""
    limit = utcnow() - dt.timedelta(
        seconds=STALE_SECONDS if stale_seconds is None else stale_seconds
    )
    with session_scope() as s:
        # Read first: the common answer (nothing stale) writes nothing.
        if (
            s.scalar(
                select(Job.id).where(Job.state == "running", Job.heartbeat_at < limit).limit(1)
            )
            is None
        ):
            return 0
        res: Any = s.execute(
            update(Job)
            .where(Job.state == "running", Job.heartbeat_at < limit)
            .values(
                state="interrupted",
                error="任务中断（worker 已停止），可以继续 / interrupted: the worker stopped; "
                "it can be resumed",
            )
        )
        return int(res.rowcount or 0)


def resume(job_id: int) -> dict[str, Any]:
    """Queue an interrupted (or failed) job again; the caller dispatches it."""
    sweep()
    with session_scope() as s:
        job = _existing(s, job_id)
        if job.state not in ("interrupted", "failed"):
            raise StateError(
                "只有中断或失败的任务可以继续 / only an interrupted or failed job can be resumed"
            )
        job.state, job.error, job.finished_at = "queued", None, None
        if job.kind == "import":
            job.done = 0  # an import starts again (idempotent); a bulk job keeps its cursor
        s.flush()
        return as_dict(job)


def _claim(job_id: int) -> Job | None:
    """queued → running, atomically; None when another worker has it or it is finished."""
    now = utcnow()
    with session_scope() as s:
        res: Any = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "queued")
            .values(state="running", started_at=now, heartbeat_at=now, attempts=Job.attempts + 1)
        )
        if not res.rowcount:
            return None
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def _progress(job_id: int, **values: Any) -> None:
    with session_scope() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "running")
            .values(heartbeat_at=utcnow(), **values)
        )


def _finish(job_id: int, state: str, **values: Any) -> None:
    with session_scope() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state=state, finished_at=utcnow(), heartbeat_at=utcnow(), **values)
        )


def fail(job_id: int, error: str) -> None:
    """Mark a job failed (e.g. it could not be handed to a worker)."""
    _finish(job_id, "failed", error=error[:400])


def run(job_id: int) -> str:
    """Do job ``job_id`` (idempotent: a job already taken or finished is left alone).

    Returns its final state.  Never raises for a job's own failure: the error is
    written to the row, in one line, without a server path.
    """
    job = _claim(job_id)
    if job is None:
        return "skipped"
    try:
        if job.kind == "import":
            _run_import(job)
        else:
            _run_bulk(job)
    except Exception as exc:
        log.exception("job %s failed", job_id)
        _finish(job_id, "failed", error=_one_line(exc))
        _audit(job, "job.failed", error=_one_line(exc))
        return "failed"
    return "done"


def _one_line(exc: Exception) -> str:
    text = (str(exc) or type(exc).__name__).strip().splitlines()[0][:400]
    var = str(get_settings().var_dir.resolve())
    return text.replace(var + "/", "").replace(var, "")


def _audit(job: Job, action: str, **detail: Any) -> None:
    from newsletter.core.audit import audit

    with session_scope() as s:
        audit(s, job.actor, action, f"job:{job.id}", kind=job.kind, title=job.title, **detail)


def _run_import(job: Job) -> None:
    from newsletter.audience.importer import import_file

    assert job.file is not None
    var = get_settings().var_dir
    path = var / job.file
    report = path.with_name(path.stem + ".errors.csv")
    p = job.params
    summary = import_file(
        path,
        str(p["list_name"]),
        resubscribe=bool(p.get("resubscribe")),
        welcome=bool(p.get("welcome")),
        actor=job.actor,
        report_path=report,
        chunk_size=IMPORT_CHUNK,
        progress=lambda rows: _progress(job.id, done=rows),
    )
    result = summary.as_dict()
    result.pop("file", None)
    result.pop("report_path", None)
    if summary.errors:
        result["report"] = str(Path(job.file).with_name(report.name))
    changed = summary.new + summary.updated + summary.resubscribed
    _finish(job.id, "done", done=summary.rows, total=summary.rows, changed=changed, result=result)


def _run_bulk(job: Job) -> None:
    from newsletter.audience import bulk

    p = job.params
    action = str(p["action"])
    from_list = p.get("from_list")
    to_list = p.get("to_list")
    with session_scope() as s:
        bulk.check(s, action, from_list, to_list)
        cond = bulk.selection(
            s,
            q=p.get("q") or "",
            list_id=p.get("list_id"),
            segment_id=p.get("segment_id"),
            ids=p.get("ids"),
        )
        if job.total is None or job.cursor is None:
            total = bulk.count(s, cond)
            s.execute(
                update(Job).where(Job.id == job.id).values(total=total, heartbeat_at=utcnow())
            )
    cursor, done, changed = job.cursor, job.done, job.changed
    while True:
        with session_scope() as s:  # one batch, its progress and its cursor: one transaction
            cond = bulk.selection(
                s,
                q=p.get("q") or "",
                list_id=p.get("list_id"),
                segment_id=p.get("segment_id"),
                ids=p.get("ids"),
            )
            ids = bulk.ids_after(s, cond, cursor, BATCH)
            if not ids:
                break
            changed += bulk.apply(
                s, ids, action, from_list=from_list, to_list=to_list, actor=job.actor
            )
            cursor, done = ids[-1], done + len(ids)
            s.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(cursor=cursor, done=done, changed=changed, heartbeat_at=utcnow())
            )
    result = {"action": action, "selected": done, "changed": changed}
    with session_scope() as s:
        s.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(
                state="done", finished_at=utcnow(), heartbeat_at=utcnow(), total=done, result=result
            )
        )
        from newsletter.core.audit import audit

        audit(
            s,
            job.actor,
            "subscribers.bulk",
            f"{action}:{done}",
            job=job.id,
            bulk=action,
            count=done,
            changed=changed,
            from_list=from_list,
            to_list=to_list,
            selection={k: v for k, v in p.items() if k in ("q", "list_id", "segment_id")},
        )
