"""Imports and bulk actions started in the console run in a real Celery worker process
(PostgreSQL, Redis): the web process only stores the file, writes the job row and
sends the task; the page reads the progress the worker writes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.models import Job, Subscriber
from newsletter.web.app import create_app
from newsletter.web.console.services import create_user
from tests.conftest import EXAMPLES
from tests.console.helpers import PASSWORDS, login
from tests.e2e.procs import env_for, start_worker, stop, wait_for

pytestmark = pytest.mark.e2e  # real worker and beat processes


def test_jobs_run_in_the_celery_worker(pg_settings, redis_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from workers.celery_app import app, configure

    cfg = pg_settings.model_copy(
        update={
            "broker_url": redis_url,
            "redis_url": redis_url,
            "redis_prefix": f"nltest:{uuid.uuid4().hex[:8]}:",
        }
    )
    reset_settings(cfg)
    configure(app)
    create_user("test", "ops", PASSWORDS["ops"], "ops", display_name="运营")
    # The worker shares the var directory with the web (where uploads are stored).
    worker = start_worker(cfg, env_for(cfg, tmp_path, NEWSLETTER_VAR_DIR=str(cfg.var_dir)))
    try:
        with TestClient(create_app(), base_url="https://testserver", follow_redirects=False) as c:
            csrf = login(c, "ops")
            h = {"X-CSRF-Token": csrf}
            with (EXAMPLES / "subscribers.csv").open("rb") as f:
                r = c.post(
                    "/api/imports",
                    files={"file": ("subscribers.csv", f, "text/csv")},
                    data={"list_name": "周报订阅"},
                    headers=h,
                )
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            job = wait_for(
                lambda: (
                    (j := c.get(f"/api/jobs/{job_id}").json())["state"] in ("done", "failed") and j
                )
            )
            assert job["state"] == "done", job
            assert job["result"]["new"] > 30 and job["done"] == job["total"]
            list_id = c.get("/api/lists").json()[0]["id"]
            r = c.post("/api/jobs/bulk", json={"action": "block", "list_id": list_id}, headers=h)
            assert r.status_code == 202, r.text
            bulk_id = r.json()["id"]
            job = wait_for(
                lambda: (
                    (j := c.get(f"/api/jobs/{bulk_id}").json())["state"] in ("done", "failed") and j
                )
            )
            assert job["state"] == "done" and job["changed"] > 30, job
        with session_scope() as s:
            assert (
                s.scalar(
                    select(func.count())
                    .select_from(Subscriber)
                    .where(Subscriber.status == "blocked")
                )
                == job["changed"]
            )
            assert all(j.attempts == 1 for j in s.scalars(select(Job)))
    finally:
        stop(worker)
        reset_settings(pg_settings)
        configure(app)
