"""Subscriber import: streamed, chunked, idempotent, with a per-row report.

Guarantees:

* Memory stays flat: rows are read as a stream and processed in chunks.
* Each chunk commits atomically. An interrupted import leaves only whole
  chunks behind, and re-running the same file converges to the same state
  (re-importing an unchanged file reports everything as ``unchanged``).
* Suppressed addresses and people who unsubscribed from the list are never
  resubscribed unless ``resubscribe=True``; that action is written to the audit log.
* Every rejected row appears in the error report (row number, value, reason).
* The list's welcome series starts for the people an import adds only when the importer
  asks for it (``welcome=True``): a years-old list brought over is not welcomed by
  accident.  Their new membership then counts as confirmed at the import.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from newsletter.audience.apply import Applier
from newsletter.audience.files import open_rows
from newsletter.audience.rows import (
    ImportSummary,
    Known,
    RowError,
    normalise_variant,
    parse_rows,
)
from newsletter.audience.service import get_or_create_list
from newsletter.core.audit import audit
from newsletter.core.db import session_scope
from newsletter.core.errors import ImportFileError
from newsletter.core.safety.csvsafe import writer as csv_writer

__all__ = ["ImportSummary", "RowError", "import_file", "normalise_variant"]


def import_file(
    path: str | Path,
    list_name: str,
    *,
    resubscribe: bool = False,
    welcome: bool = False,
    report_path: str | Path | None = None,
    actor: str = "cli",
    chunk_size: int = 20000,
    db_url: str | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import ``path`` into the list ``list_name`` (created if missing).

    The file is parsed on this thread while ``workers`` database connections
    (two on PostgreSQL, one on SQLite) apply the chunks, each chunk in its own
    transaction.  Chunks never share an address (duplicates are removed before
    they are staged), so they commute: their order of commit does not matter.
    ``progress`` is called with the number of file rows read after each chunk is
    committed (a background job writes it to its row).
    """
    path = Path(path)
    if report_path is not None:
        _probe_writable(Path(report_path))  # before anything is committed
    src, rows = open_rows(path)
    summary = ImportSummary(str(path), src.encoding, list_name)
    with session_scope(db_url) as s:
        list_id = get_or_create_list(s, list_name).id
        pg = s.get_bind().dialect.name == "postgresql"
    if workers is None:
        workers = 2 if pg else 1
    applier = Applier(
        list_id, f"import:{path.name}", resubscribe, actor, summary, db_url, pg, welcome=welcome
    )
    seen: dict[int, int] = {}
    parsed = parse_rows(
        src,
        rows,
        summary,
        seen,
        chunk_size,
        copy_text=pg,
        known=Known(db_url) if pg else None,
    )
    # Parse the next chunks while the database applies earlier ones; at most
    # ``workers`` chunks are in flight, so memory stays bounded.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="import") as pool:
        pending: deque[tuple[Future[None], int]] = deque()

        def settle() -> None:
            future, read = pending.popleft()
            future.result()
            if progress is not None:
                progress(read)

        try:
            for chunk in parsed:
                while len(pending) >= workers:
                    settle()
                pending.append((pool.submit(applier.apply, chunk), chunk.read))
            while pending:
                settle()
        finally:
            for f, _read in pending:
                f.cancel()
    seen.clear()
    if report_path is None and summary.errors:
        report_path = path.with_name(path.stem + ".errors.csv")
    if report_path is not None:
        _write_report(Path(report_path), summary.errors)
        summary.report_path = str(report_path)
    with session_scope(db_url) as s:
        audit(
            s,
            actor,
            "subscribers.import",
            list_name,
            welcome=welcome,
            **{k: v for k, v in summary.as_dict().items() if k != "report_path"},
        )
    return summary


def _probe_writable(path: Path) -> None:
    """Refuse a report path that cannot be written, before the import changes anything."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory", str(path))
        with tmp.open("w", encoding="utf-8"):
            pass
        tmp.unlink()
    except OSError as exc:
        raise ImportFileError(
            f"{path}: cannot write the error report ({exc.strerror}); nothing was imported "
            "/ 无法写入错误报告，未导入任何数据"
        ) from exc


def _write_report(path: Path, errors: list[RowError]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv_writer(fh)  # formula cells neutralised (OWASP)
        w.writerow(["row", "value", "reason"])
        for e in sorted(errors, key=lambda e: e.row):
            w.writerow([e.row, e.value, e.reason])
    tmp.replace(path)
