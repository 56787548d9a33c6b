"""Background jobs as a hostile console user: roles, ids changed by hand, and uploads
that are refused leave nothing behind."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.models import Job

CSV = b"email\nreader@example.org\n"


def _jobs() -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(Job)) or 0)


def _settle() -> None:
    """Let the imports started here finish (they run in threads in the embedded mode)."""
    deadline = time.time() + 30
    while time.time() < deadline:
        with session_scope() as s:
            busy = s.scalar(
                select(func.count()).select_from(Job).where(Job.state.in_(("queued", "running")))
            )
        if not busy:
            return
        time.sleep(0.1)


def test_a_hostile_list_name_is_cleaned_and_a_refusal_leaves_no_file(as_role: Any) -> None:
    ops = as_role("ops")
    imports = get_settings().var_dir / "console" / "imports"
    # NUL cannot be stored by PostgreSQL: it was a 422 after the upload had been kept
    r = ops.client.post(
        "/api/imports",
        files={"file": ("ok.csv", CSV, "text/csv")},
        data={"list_name": "周\x00报"},
        headers={"X-CSRF-Token": ops.csrf},
    )
    assert r.status_code == 202, r.text
    assert r.json()["params"]["list_name"] == "周报"
    _settle()  # the first job has written its files (its error report too)
    kept = set(imports.iterdir())
    # refused (nothing but controls): no job, no file
    r = ops.client.post(
        "/api/imports",
        files={"file": ("ok.csv", CSV, "text/csv")},
        data={"list_name": "\x00\x07"},
        headers={"X-CSRF-Token": ops.csrf},
    )
    assert r.status_code == 422 and "Traceback" not in r.text
    assert set(imports.iterdir()) == kept
    assert _jobs() == 1
    _settle()


def test_jobs_are_for_ops_and_ids_stay_in_range(as_role: Any) -> None:
    ops, marketing, editor = as_role("ops"), as_role("marketing"), as_role("editor")
    r = ops.client.post(
        "/api/imports",
        files={"file": ("ok.csv", CSV, "text/csv")},
        data={"list_name": "周报"},
        headers={"X-CSRF-Token": ops.csrf},
    )
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    for who in (marketing, editor):
        assert who.client.get("/api/jobs").status_code == 403
        assert who.client.get(f"/api/jobs/{job}").status_code == 403
        assert who.client.get(f"/console/jobs/{job}").status_code == 403
        assert who.post(f"/api/jobs/{job}/resume").status_code == 403
        assert who.post("/api/jobs/bulk", json={"action": "delete", "q": "a"}).status_code == 403
    # without the CSRF token, a session cannot start or resume anything
    assert ops.client.post(f"/console/jobs/{job}/resume").status_code == 403
    assert ops.client.post("/api/jobs/bulk", json={"action": "delete", "q": "a"}).status_code == 403
    for bad in ("99999999999", "-1", "0"):
        assert ops.client.get(f"/api/jobs/{bad}").status_code in (404, 422)
    _settle()
