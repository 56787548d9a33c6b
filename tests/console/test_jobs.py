"""Imports and bulk actions run as background jobs: the upload is stored under the var
directory, a job row records who started it and how far it got (rows done of total,
written with every batch), the work is handed off through the dispatcher, a job
outlives the web process that started it, and a killed job is shown as interrupted
and can be resumed.  Bulk actions over 100,000 subscribers (PostgreSQL) finish as a
job with progress and an audit entry."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.models import AuditLog, Job, MailingList, Segment, Subscriber, Subscription, utcnow
from newsletter.runtime import jobs as joblib
from newsletter.runtime.inline import InProcess
from newsletter.web.app import create_app
from newsletter.web.console.services import overview
from tests.console.helpers import PASSWORDS, client_as, login

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _wait(job_id: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = joblib.get(job_id)
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {joblib.get(job_id)}")


def _flash(c: TestClient, r: Any) -> str:
    page = c.get(r.headers["location"]).text
    m = re.search(r'class="flash[^"]*"[^>]*>(.*?)</div>', page, re.S)
    return m.group(1) if m else ""


def _actions() -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def test_an_import_is_a_job_with_a_row_count_from_the_first_second(
    client: TestClient, console_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = joblib._progress

    def spy(job_id: int, **values: Any) -> None:
        seen.append(int(values.get("done", -1)))
        real(job_id, **values)

    monkeypatch.setattr(joblib, "_progress", spy)
    monkeypatch.setattr(joblib, "IMPORT_CHUNK", 10)  # several chunks from a small file
    csrf = login(client, "ops")
    with (EXAMPLES / "subscribers.csv").open("rb") as f:
        r = client.post(
            "/api/imports",
            files={"file": ("subscribers.csv", f, "text/csv")},
            data={"list_name": "周报订阅"},
            headers={"X-CSRF-Token": csrf},
        )
    assert r.status_code == 202, r.text
    first = r.json()
    # The total is known at once (counted from the stored file), before any row is done.
    lines = (EXAMPLES / "subscribers.csv").read_bytes().count(b"\n")
    assert first["kind"] == "import" and first["total"] == lines - 1
    assert first["state"] in ("queued", "running", "done") and first["actor"] == "ops"
    job = _wait(first["id"])
    assert job["state"] == "done" and job["percent"] == 100.0, job
    assert job["result"]["new"] > 30 and job["has_report"]
    assert job["done"] == job["total"] == job["result"]["rows"]
    # Progress was written chunk by chunk, increasing.
    moving = [n for n in seen if n >= 0]
    assert len(moving) >= 3 and moving == sorted(moving) and 0 < moving[0] < moving[-1]
    # The upload was kept under the var directory (not in memory), and reported by job id.
    with session_scope() as s:
        row = s.get(Job, first["id"])
        assert row is not None and row.file and row.file.startswith("console/imports/")
        assert (console_settings.var_dir / row.file).is_file()
    report = client.get(f"/api/imports/{first['id']}/errors.csv")
    assert report.status_code == 200 and "row" in report.text
    assert client.get(f"/api/jobs/{first['id']}").json()["state"] == "done"
    page = client.get(f"/console/jobs/{first['id']}").text
    assert 'id="j-result"' in page and "subscribers.csv" in page
    assert "console.import" in _actions() and "subscribers.import" in _actions()
    assert f"/console/jobs/{first['id']}" in client.get("/console/jobs").text


def test_a_job_outlives_the_web_process_and_runs_in_the_worker(
    client: TestClient, console_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[int] = []
    monkeypatch.setattr(InProcess, "run_job", lambda self, job_id: handed.append(job_id))
    csrf = login(client, "ops")
    with (EXAMPLES / "subscribers.csv").open("rb") as f:
        r = client.post(
            "/api/imports",
            files={"file": ("subscribers.csv", f, "text/csv")},
            data={"list_name": "周报订阅"},
            headers={"X-CSRF-Token": csrf},
        )
    job_id = r.json()["id"]
    assert handed == [job_id]  # handed off through the dispatcher, not run in the request
    # "Restart" the web: a new app, a new session; the job is read from its row.
    with TestClient(create_app(), base_url="https://testserver", follow_redirects=False) as c2:
        login(c2, "ops")
        page = c2.get(f"/console/jobs/{job_id}").text
        assert 'data-state="queued"' in page and 'id="j-total"' in page
        # The worker runs it (here, the same function a Celery task calls).
        assert joblib.run(job_id) == "done"
        assert joblib.run(job_id) == "skipped"  # a message delivered twice does nothing
        assert c2.get(f"/api/jobs/{job_id}").json()["state"] == "done"
        assert 'data-state="done"' in c2.get(f"/console/jobs/{job_id}").text


def _subscribers(n: int) -> tuple[int, int]:
    """``n`` subscribers in a list named 周报订阅, and an empty list VIP: their ids."""
    with session_scope() as s:
        weekly, vip = MailingList(name="周报订阅"), MailingList(name="VIP")
        s.add_all([weekly, vip])
        s.flush()
        for i in range(n):
            sub = Subscriber(
                email=f"reader{i:03d}@example.org",
                name="",
                attributes={"city": "北京" if i % 2 else "上海"},
            )
            s.add(sub)
            s.flush()
            s.add(Subscription(subscriber_id=sub.id, list_id=weekly.id, status="active"))
        return int(weekly.id), int(vip.id)


def test_a_killed_bulk_job_is_shown_interrupted_and_resumes_where_it_stopped(
    client: TestClient, console_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    weekly, vip = _subscribers(30)
    monkeypatch.setattr(joblib, "BATCH", 10)
    monkeypatch.setattr(InProcess, "run_job", lambda self, job_id: None)  # the worker is down
    csrf = login(client, "ops")
    r = client.post(
        "/console/subscribers/bulk-job",
        data={"csrf": csrf, "action": "move", "q": "", "list_id": str(weekly), "to_list": str(vip)},
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/console/jobs/")
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    # A worker took it, did one batch, and was killed: its heartbeat stops.
    with session_scope() as s:
        first = list(s.scalars(select(Subscriber.id).order_by(Subscriber.id).limit(10)))
    joblib._claim(job_id)
    with session_scope() as s:
        from newsletter.audience import bulk

        bulk.apply(s, first, "move", from_list=weekly, to_list=vip)
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                cursor=first[-1],
                done=10,
                changed=10,
                total=30,
                heartbeat_at=utcnow() - dt.timedelta(hours=1),
            )
        )
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["state"] == "interrupted" and job["done"] == 10 and "interrupted" in job["error"]
    page = client.get(f"/console/jobs/{job_id}").text
    assert 'id="j-resume"' in page
    # Marketing may not resume it; ops may.
    m, mcsrf = client_as("marketing")
    assert m.post(f"/console/jobs/{job_id}/resume", data={"csrf": mcsrf}).status_code == 403
    monkeypatch.setattr(InProcess, "run_job", lambda self, jid: joblib.run(jid))
    r = client.post(f"/console/jobs/{job_id}/resume", data={"csrf": csrf})
    assert r.status_code == 303
    job = joblib.get(job_id)
    assert job["state"] == "done" and job["done"] == 30 and job["changed"] == 30
    assert job["attempts"] == 2
    with session_scope() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(Subscription).where(Subscription.list_id == vip)
            )
            == 30
        )
        assert (
            s.scalar(
                select(func.count()).select_from(Subscription).where(Subscription.list_id == weekly)
            )
            == 0
        )
    assert "job.resume" in _actions() and "subscribers.bulk" in _actions()
    # A finished job cannot be resumed (one clear line).
    r = client.post(f"/console/jobs/{job_id}/resume", data={"csrf": csrf})
    assert "只有中断或失败的任务可以继续" in _flash(client, r)


def test_bulk_jobs_over_a_search_and_a_segment(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    weekly, _vip = _subscribers(12)
    csrf = login(client, "ops")
    page = client.get("/console/subscribers", params={"q": "reader00", "list_id": str(weekly)})
    assert 'id="bulk-all-form"' in page.text and 'id="match-count">10<' in page.text
    # Block everyone whose address starts with reader00 (10 of 12), as a job.
    r = client.post(
        "/console/subscribers/bulk-job",
        data={"csrf": csrf, "action": "block", "q": "reader00", "list_id": str(weekly)},
    )
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    job = _wait(job_id)
    assert job["state"] == "done" and job["result"] == {
        "action": "block",
        "selected": 10,
        "changed": 10,
    }
    with session_scope() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(Subscriber).where(Subscriber.status == "blocked")
            )
            == 10
        )
    # A segment: unsubscribe the Beijing readers from the list.
    with session_scope() as s:
        seg = Segment(name="北京读者", definition={"attr": "city", "op": "eq", "value": "北京"})
        s.add(seg)
        s.flush()
        seg_id = seg.id
    r = client.post(
        "/console/subscribers/bulk-job",
        data={
            "csrf": csrf,
            "action": "unsubscribe",
            "segment_id": str(seg_id),
            "list_id": str(weekly),
        },
    )
    job = _wait(int(r.headers["location"].rsplit("/", 1)[1]))
    # Active Beijing readers: the two not blocked (reader010 is Shanghai, reader011 Beijing,
    # reader001..009 odd ones are blocked).
    assert job["state"] == "done" and job["result"]["changed"] == job["result"]["selected"] == 1
    with session_scope() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.email == "reader011@example.org"))
        assert sub is not None
        row = s.get(Subscription, (sub.id, weekly))
        assert row is not None and row.status == "unsubscribed" and row.reason == "console"
    audit = [a for a in _actions() if a.startswith("subscribers.bulk")]
    assert audit.count("subscribers.bulk_job") == 2 and audit.count("subscribers.bulk") == 2


def test_bulk_jobs_refuse_hostile_input_in_one_line(
    client: TestClient, console_settings: Settings
) -> None:
    weekly, _vip = _subscribers(3)
    csrf = login(client, "ops")
    cases = [
        ({"action": "explode", "q": "reader"}, "未知的批量操作"),
        ({"action": "move", "q": "reader", "list_id": str(weekly)}, "请选择目标列表"),
        ({"action": "block", "q": "", "list_id": ""}, "请先搜索或选择分群"),
        ({"action": "block", "segment_id": "999"}, "999"),
        ({"action": "block", "q": "x", "list_id": "999"}, "999"),
    ]
    for data, said in cases:
        r = client.post("/console/subscribers/bulk-job", data={"csrf": csrf, **data})
        assert r.status_code == 303 and "/console/jobs/" not in r.headers["location"]
        line = _flash(client, r)
        assert said in line and re.search(r"[\u4e00-\u9fff]", line), (data, line)
        assert "Traceback" not in line and "/work/" not in line and "/tmp/" not in line
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
    # No CSRF token: the error page, nothing queued.
    r = client.post("/console/subscribers/bulk-job", data={"action": "block", "q": "reader"})
    assert r.status_code == 403 and "表单已过期" in r.text and "Traceback" not in r.text
    # Marketing reads statistics but cannot start a bulk job, by form or by API.
    m, mcsrf = client_as("marketing")
    r = m.post(
        "/console/subscribers/bulk-job", data={"csrf": mcsrf, "action": "block", "q": "reader"}
    )
    assert r.status_code == 403 and "没有权限" in r.text and "Traceback" not in r.text
    r = m.post(
        "/api/jobs/bulk", json={"action": "block", "q": "reader"}, headers={"X-CSRF-Token": mcsrf}
    )
    assert r.status_code == 403
    assert m.get("/console/stats").status_code == 200
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
    # Unknown jobs: a 404 page and a JSON 404, in one line.
    assert client.get("/console/jobs/424242").status_code == 404
    r = client.get("/api/jobs/424242")
    assert r.status_code == 404 and "job 424242 does not exist" in r.json()["detail"]
    assert client.get("/api/imports/../../etc").status_code == 404
    assert client.get("/console/jobs/abc").status_code in (400, 404, 422)


def test_a_job_the_broker_cannot_take_is_failed_not_stuck(
    client: TestClient, console_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.core.errors import ServiceUnavailable

    def down(self: InProcess, job_id: int) -> None:
        raise ServiceUnavailable("the message broker is unreachable / 无法连接消息代理")

    weekly, _vip = _subscribers(2)
    monkeypatch.setattr(InProcess, "run_job", down)
    csrf = login(client, "ops")
    r = client.post(
        "/console/subscribers/bulk-job",
        data={"csrf": csrf, "action": "block", "q": "", "list_id": str(weekly)},
    )
    assert "无法连接消息代理" in _flash(client, r)
    with session_scope() as s:
        job = s.scalar(select(Job))
        assert job is not None and job.state == "failed" and "broker" in (job.error or "")


# -- PostgreSQL: 100,000 subscribers -------------------------------------------------


@pytest.fixture
def pg_console(pg_settings: Settings) -> Settings:
    from newsletter.web.console.services import create_user

    create_user("test", "ops", PASSWORDS["ops"], "ops", display_name="运营")
    overview.clear_cache()
    return pg_settings


def test_a_bulk_action_over_100000_subscribers_is_a_job_with_progress_and_audit(
    pg_console: Settings,
) -> None:
    n = 100_000
    with session_scope() as s:
        s.execute(
            text(
                "INSERT INTO mailing_list (name, description, double_opt_in, created_at) "
                "VALUES ('周报订阅', '', false, now())"
            )
        )
        s.execute(
            text(
                "INSERT INTO subscriber (email, name, variant, attributes, status, source, "
                "created_at, updated_at) SELECT 'reader' || g || '@example.org', '', 'zh-Hans', "
                "'{}'::jsonb, 'active', 'test', now(), now() FROM generate_series(1, :n) g"
            ),
            {"n": n},
        )
        s.execute(
            text(
                "INSERT INTO subscription (subscriber_id, list_id, status, created_at, updated_at) "
                "SELECT id, (SELECT id FROM mailing_list), 'active', now(), now() FROM subscriber"
            )
        )
        list_id = s.scalar(text("SELECT id FROM mailing_list"))
    with TestClient(create_app(), base_url="https://testserver", follow_redirects=False) as c:
        csrf = login(c, "ops")
        started = time.time()
        r = c.post(
            "/console/subscribers/bulk-job",
            data={"csrf": csrf, "action": "unsubscribe", "q": "", "list_id": str(list_id)},
        )
        assert r.status_code == 303, r.text
        job_id = int(r.headers["location"].rsplit("/", 1)[1])
        seen: list[int] = []
        states: set[str] = set()
        while time.time() - started < 120:
            j = c.get(f"/api/jobs/{job_id}").json()
            states.add(j["state"])
            seen.append(j["done"])
            if j["state"] not in ("queued", "running"):
                break
            time.sleep(0.05)
    assert j["state"] == "done", j
    assert j["total"] == n and j["done"] == n and j["changed"] == n and j["percent"] == 100.0
    # Progress moved: intermediate row counts were visible while it ran.
    between = sorted({x for x in seen if 0 < x < n})
    assert len(between) >= 2 and seen == sorted(seen), seen[:50]
    with session_scope() as s:
        assert s.scalar(text("SELECT count(*) FROM subscription WHERE status = 'active'")) == 0
        assert (
            s.scalar(
                text(
                    "SELECT count(*) FROM subscription "
                    "WHERE status = 'unsubscribed' AND reason = 'console'"
                )
            )
            == n
        )
        entry = s.scalar(select(AuditLog).where(AuditLog.action == "subscribers.bulk"))
        assert entry is not None and entry.actor == "ops" and entry.detail["count"] == n
        assert entry.detail["job"] == job_id and entry.detail["bulk"] == "unsubscribe"
    assert time.time() - started < 60


def test_threads_are_not_left_behind() -> None:
    """Jobs started by the tests above have all ended (no thread still writing)."""
    deadline = time.time() + 10
    while time.time() < deadline and any(t.name.startswith("job-") for t in threading.enumerate()):
        time.sleep(0.1)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("job-")]


def test_a_typed_list_name_never_creates_a_list_silently(client: TestClient) -> None:
    from newsletter.web.console import services as svc

    csrf = login(client, "ops")
    data = "邮箱,姓名\na@example.com,甲\n".encode()
    form = {"list_name": "周报订阅X", "must_exist": "true"}
    r = client.post(
        "/api/imports",
        files={"file": ("s.csv", data, "text/csv")},
        data=form,
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422 and r.json()["code"] == "list.not_found_new"
    assert "周报订阅X" not in {x["name"] for x in svc.lists(counts=False)}
    r = client.post(
        "/api/imports",
        files={"file": ("s.csv", data, "text/csv")},
        data=form | {"new_list": "true"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 202, r.text
