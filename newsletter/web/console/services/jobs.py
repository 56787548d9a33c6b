"""Console services for background jobs: subscriber imports and bulk actions over a
search or a segment.  The work itself is :mod:`newsletter.runtime.jobs`, run by a worker;
these functions store the upload, create the job row, audit it and hand it off."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import IO, Any

from fastapi import Request
from sqlalchemy import select

from newsletter.audience import bulk
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.dispatch import dispatcher
from newsletter.core.errors import NotFound, ServiceUnavailable
from newsletter.core.safety.headers import clean_text
from newsletter.runtime import jobs as joblib
from newsletter.web.console.auth import Principal, record
from newsletter.web.console.services.common import ConsoleError

__all__ = [
    "IMPORT_MAX_BYTES",
    "get_job",
    "import_report",
    "list_jobs",
    "resume_job",
    "start_bulk_job",
    "start_import",
]

#: The largest upload kept (a million rows of a wide CSV is about 200 MB).
IMPORT_MAX_BYTES = 512 * 1024 * 1024
_SUFFIXES = (".csv", ".txt", ".xlsx", ".tsv")


def _hand_off(job_id: int) -> None:
    """Give the job to the dispatcher; if it cannot take it, the job is failed (never stuck)."""
    try:
        d = dispatcher()
        d.check()
        d.run_job(job_id)
    except ServiceUnavailable as exc:
        joblib.fail(job_id, str(exc))
        raise


def _store(data: bytes | IO[bytes], dest: Path) -> int:
    """Write the upload to ``dest`` in pieces (never wholly in memory); returns its size."""
    if isinstance(data, bytes):
        dest.write_bytes(data)
        return len(data)
    with dest.open("wb") as out:
        shutil.copyfileobj(data, out, 1024 * 1024)
    return dest.stat().st_size


def _count_rows(path: Path) -> int | None:
    """Data rows of a text file (lines after the header), counted in pieces; None for XLSX."""
    if path.suffix == ".xlsx":
        return None
    n, last = 0, b"\n"
    with path.open("rb") as fh:
        while block := fh.read(1024 * 1024):
            n += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        n += 1
    return max(0, n - 1)


def start_import(
    actor: Principal,
    list_name: str,
    filename: str,
    data: bytes | IO[bytes],
    *,
    resubscribe: bool = False,
    welcome: bool = False,
    request: Request | None = None,
    must_exist: bool = False,
) -> dict[str, Any]:
    """Store the upload under the var directory and queue its import as a job.

    ``must_exist`` (the console's form): a list that does not exist yet is refused unless
    the person asked for a new one, so a typo never creates a list silently."""
    # Cleaned as every list name is (no controls: PostgreSQL refuses NUL outright).
    list_name = " ".join(clean_text(list_name).split())
    if not list_name:
        raise ConsoleError("请选择列表 / choose a list")
    if must_exist:
        from newsletter.models import MailingList

        with session_scope() as s:
            if s.scalar(select(MailingList.id).where(MailingList.name == list_name)) is None:
                from newsletter.core.catalogue import coded

                raise coded(ConsoleError, "list.not_found_new", name=list_name)
    suffix = Path(filename or "upload.csv").suffix.lower()
    if suffix not in _SUFFIXES:
        suffix = ".csv"
    token = secrets.token_urlsafe(12)
    rel = Path("console") / "imports" / f"{token}{suffix}"
    dest = get_settings().var_dir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    size = _store(data, dest)
    if size == 0:
        dest.unlink(missing_ok=True)
        raise ConsoleError("文件为空 / the file is empty")
    if size > IMPORT_MAX_BYTES:
        dest.unlink(missing_ok=True)
        raise ConsoleError("文件过大（最多 512 MB）/ the file is too large (512 MB at most)")
    shown = clean_text(Path(filename or "upload").name, 200)
    try:
        job_id = joblib.create(
            "import",
            actor.username,
            f"{shown} → {list_name}",
            {
                "list_name": list_name,
                "resubscribe": resubscribe,
                "welcome": welcome,
                "filename": shown,
            },
            file=str(rel),
            total=_count_rows(dest),
        )
    except BaseException:
        dest.unlink(missing_ok=True)  # a refused import keeps nothing
        raise
    with session_scope() as s:
        record(
            s,
            actor,
            "console.import",
            list_name,
            request,
            file=shown,
            job=job_id,
            resubscribe=resubscribe,
            welcome=welcome,
        )
    _hand_off(job_id)
    return get_job(job_id)


def start_bulk_job(
    actor: Principal,
    action: str,
    *,
    q: str = "",
    list_id: int | None = None,
    segment_id: int | None = None,
    to_list: int | None = None,
    request: Request | None = None,
) -> dict[str, Any]:
    """Queue ``action`` over every subscriber of a search (``q``, ``list_id``) or of a
    segment (``segment_id``, optionally within ``list_id``) as a job."""
    q = (q or "").strip()[:200]
    with session_scope() as s:
        bulk.check(s, action, list_id, to_list)
        bulk.selection(s, q=q, list_id=list_id, segment_id=segment_id)  # segment exists
    if segment_id is None and not q and list_id is None:
        raise ConsoleError("请先搜索或选择分群 / search or choose a segment first")
    what = f"segment:{segment_id}" if segment_id is not None else f"search:{q}"
    # Within a list, "unsubscribe" and "move" act on that list (as for ticked rows).
    params = {
        "action": action,
        "q": q,
        "list_id": list_id,
        "segment_id": segment_id,
        "from_list": list_id,
        "to_list": to_list,
    }
    job_id = joblib.create("bulk", actor.username, f"{action} · {what}"[:300], params)
    with session_scope() as s:
        record(
            s,
            actor,
            "subscribers.bulk_job",
            f"job:{job_id}",
            request,
            bulk=action,
            q=q,
            list_id=list_id,
            segment_id=segment_id,
            to_list=to_list,
        )
    _hand_off(job_id)
    return get_job(job_id)


def get_job(job_id: int) -> dict[str, Any]:
    out = joblib.get(job_id)
    if out["kind"] == "import":
        out["summary"] = out["result"]
    return out


def list_jobs(limit: int = 50) -> list[dict[str, Any]]:
    return joblib.recent(max(1, min(limit, 200)))


def import_report(job_id: int) -> Path:
    """The error report of an import job (a file under the var directory)."""
    job = joblib.get(job_id)
    rel = (job.get("result") or {}).get("report")
    if job["kind"] != "import" or not rel:
        raise NotFound("没有错误报告 / no error report")
    var = get_settings().var_dir.resolve()
    path = (var / rel).resolve()
    if var not in path.parents or not path.is_file():
        raise NotFound("没有错误报告 / no error report")
    return path


def resume_job(actor: Principal, job_id: int, request: Request | None = None) -> dict[str, Any]:
    out = joblib.resume(job_id)
    with session_scope() as s:
        record(s, actor, "job.resume", f"job:{job_id}", request, kind=out["kind"])
    _hand_off(job_id)
    return get_job(job_id)
