"""Redis outages, the spool, and kill -9 of an ingester mid-batch: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.core.redis import redis_client
from newsletter.core.safety.signing import delivery_token
from newsletter.models import Delivery, Event
from newsletter.reports.stats import send_stats
from newsletter.tracking import intake as tracking_events
from newsletter.tracking.ingester import consume
from newsletter.tracking.intake import STREAM, make_event, replay_spool, submit
from newsletter.web.app import create_app
from tests.tracking.helpers import BROWSER, sent_send, snapshot

ROOT = Path(__file__).resolve().parents[2]


def _count() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


@pytest.fixture(autouse=True)
def _breaker() -> None:
    tracking_events._redis_down_until = 0.0


def test_redis_outage_loses_no_open(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(2)
    reset_settings(any_db.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    client = TestClient(create_app())
    for d in ids["deliveries"]:
        r = client.get(f"/o/{delivery_token(d)}.gif", headers={"User-Agent": BROWSER})
        assert r.status_code == 200
    assert _count() == 2
    with session_scope() as s:
        assert send_stats(s, ids["send"])["opens_unique"] == 2


def test_database_and_redis_down_spools_then_replays(pg_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(1)
    tok = delivery_token(ids["deliveries"][0])
    dead = pg_settings.model_copy(update={
        "redis_url": "redis://127.0.0.1:1/0",
        "database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none",
    })  # fmt: skip
    reset_settings(dead)
    e = make_event("open", tok, user_agent=BROWSER, ip="198.51.100.7")
    assert e is not None and submit(e) == "spool"
    assert submit(dict(e)) == "spool"  # the same event twice (a retry): still stored once
    spooled = list((dead.var_dir / "spool").glob("*.jsonl"))
    assert spooled and "198.51.100.7" not in spooled[0].read_text()  # only the hash
    reset_settings(pg_settings)
    assert replay_spool() == 2
    assert _count() == 1 and not list((dead.var_dir / "spool").glob("*"))


def test_forged_token_never_reaches_the_stream(pg_settings, redis_url) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(1)
    reset_settings(pg_settings.model_copy(update={"redis_url": redis_url}))
    tok = delivery_token(ids["deliveries"][0])
    client = TestClient(create_app())
    forged = tok[:-2] + ("AA" if not tok.endswith("AA") else "BB")
    for path in (f"/o/{forged}.gif", "/o/x.gif", f"/c/{forged}/1"):
        client.get(path, follow_redirects=False)
    r = redis_client()
    key = pg_settings.redis_prefix + STREAM
    assert r.xlen(key) == 0
    client.get(f"/o/{tok}.gif", headers={"User-Agent": BROWSER})
    assert r.xlen(key) == 1 and _count() == 0  # the endpoint did not touch the database
    assert consume(max_batches=3, block_ms=50) == 1 and _count() == 1


def test_click_target_cannot_be_changed_from_the_request(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(1)
    tok = delivery_token(ids["deliveries"][0])
    client = TestClient(create_app(), follow_redirects=False)
    target = "https://www.gov.cn/zhengce/1.htm"
    for path, headers in [
        (f"/c/{tok}/1?url=https://evil.example.net/", {}),
        (f"/c/{tok}/1?u=//evil.example.net&next=https://evil.example.net", {}),
        (f"/c/{tok}/1", {"Referer": "https://evil.example.net/", "Host": "evil.example.net"}),
        (f"/c/{tok}/1#https://evil.example.net", {"X-Forwarded-Host": "evil.example.net"}),
    ]:
        r = client.get(path, headers={"User-Agent": BROWSER, **headers})
        assert r.status_code == 302 and r.headers["location"] == target
    assert client.get(f"/c/{tok}/2").status_code == 404  # no such link in this issue
    assert client.get(f"/c/{tok}/1%2F..%2F..").status_code in (404, 422)


_WORKER = r"""
import sys, time, pathlib
from newsletter.tracking import counters, ingester
mode, marker = sys.argv[1], pathlib.Path(sys.argv[2])
if mode == "mid":  # die inside the transaction: rows written, not committed
    real = counters.apply
    def hold(*a, **k):
        real(*a, **k)
        marker.touch()
        time.sleep(120)
    counters.apply = hold
elif mode == "post":  # die after the commit, before XACK
    real_ingest = ingester.ingest
    def hold2(evs, **k):
        n = real_ingest(evs, **k)
        marker.touch()
        time.sleep(120)
        return n
    ingester.ingest = hold2
elif mode == "together":  # say ready, wait for the starting signal, then drain and report
    print("ready", flush=True)
    while not marker.exists():
        time.sleep(0.01)
handled = ingester.consume(count=int(sys.argv[3]), block_ms=100, idle_ms=int(sys.argv[4]),
                           max_batches=None if mode not in ("drain", "together") else 50)
print(handled)
"""


def _env(settings, redis_url: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = dict(os.environ)
    env.update(
        NEWSLETTER_DATABASE_URL=settings.database_url,
        NEWSLETTER_REDIS_URL=redis_url,
        NEWSLETTER_REDIS_PREFIX=settings.redis_prefix,
        NEWSLETTER_SECRET_KEY=settings.secret_key.get_secret_value(),
        NEWSLETTER_VAR_DIR=str(settings.var_dir),
        PYTHONPATH=str(ROOT),
    )
    return env


def _run_until_marker(mode: str, env: dict[str, str], marker: Path, count: int) -> None:
    p = subprocess.Popen([sys.executable, "-c", _WORKER, mode, str(marker), str(count), "60000"],
                         env=env, cwd=ROOT)  # fmt: skip
    try:
        deadline = time.monotonic() + 40
        while not marker.exists():
            assert p.poll() is None, "ingester exited early"
            assert time.monotonic() < deadline, "ingester never reached its batch"
            time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.wait(10)


def test_kill_9_mid_batch_loses_nothing_and_doubles_nothing(
    pg_settings, redis_url, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(30, links=1)
    reset_settings(pg_settings.model_copy(update={"redis_url": redis_url}))
    r = redis_client()
    key = pg_settings.redis_prefix + STREAM
    sent: list[dict] = []
    for i in range(600):  # 20 events per delivery: opens and clicks, humans and MPP
        d = ids["deliveries"][i % 30]
        kind = "click" if i % 5 == 0 else "open"
        e = make_event(
            kind,
            delivery_token(d),
            link=1 if kind == "click" else None,
            user_agent="Mozilla/5.0" if i % 7 == 0 else BROWSER,
            ip="203.0.113.5",
        )
        assert e is not None
        e["at"] = (
            ids["sent_at"].replace(microsecond=0) + __import__("datetime").timedelta(minutes=1 + i)
        ).isoformat()
        sent.append(e)
        r.xadd(key, {"e": json.dumps(e)})
    env = _env(pg_settings, redis_url)
    _run_until_marker("mid", env, tmp_path / "m1", 100)
    assert _count() == 0  # the killed batch rolled back
    _run_until_marker("post", env, tmp_path / "m2", 100)
    assert _count() == 100  # committed, but never acknowledged
    # A fresh ingester takes over what the dead ones left pending, then drains the rest.
    subprocess.run([sys.executable, "-c", _WORKER.replace("60000", "0"), "drain", "x", "100", "0"],
                   env=env, cwd=ROOT, check=True, timeout=120)  # fmt: skip
    assert r.xpending(key, "ingest")["pending"] == 0
    assert _count() == 600
    with session_scope() as s:
        uids = set(s.scalars(select(Event.uid)))
        opened = s.scalar(select(func.count()).where(Delivery.first_open_at.is_not(None)))
        st_ = send_stats(s, ids["send"])
    assert uids == {e["uid"] for e in sent}
    human_open_deliveries = {e["delivery_id"] for e in sent
                             if e["kind"] == "open" and e["ua"] == BROWSER}  # fmt: skip
    assert opened == st_["opens_unique"] == len(human_open_deliveries)
    assert st_["opens_total_human"] + st_["opens_total_machine"] == 480
    before = snapshot(ids["send"])
    with session_scope() as s:
        from newsletter.tracking.rollups import rebuild

        rebuild(s, ids["send"])
    assert snapshot(ids["send"]) == before


def test_two_ingesters_share_the_stream_and_count_exactly(pg_settings, redis_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Scaling out: two ingester processes drain one stream concurrently (small batches,
    so that their transactions update the same rollup rows at the same time)."""
    ids = sent_send(30, links=2)
    reset_settings(pg_settings.model_copy(update={"redis_url": redis_url}))
    r = redis_client()
    key = pg_settings.redis_prefix + STREAM
    sent: list[dict] = []
    for i in range(1200):
        d = ids["deliveries"][(i * 7) % 30]
        kind = "click" if i % 4 == 0 else "open"
        e = make_event(
            kind,
            delivery_token(d),
            link=1 + i % 2 if kind == "click" else None,
            user_agent=BROWSER if i % 3 else "Mozilla/5.0",
            ip="203.0.113.5",
        )
        assert e is not None
        e["at"] = (
            ids["sent_at"].replace(microsecond=0)
            + __import__("datetime").timedelta(minutes=5 + (i % 180))
        ).isoformat()
        sent.append(e)
        r.xadd(key, {"e": json.dumps(e)})
    env = _env(pg_settings, redis_url)
    go = tmp_path / "go"
    cmd = [sys.executable, "-c", _WORKER, "together", str(go), "40", "60000"]
    procs = [
        subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for p in procs:  # both have imported everything and are waiting
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    handled = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        handled.append(int(out.split()[-1]))
    assert sum(handled) == 1200 and min(handled) > 0, handled
    assert r.xpending(key, "ingest")["pending"] == 0
    assert _count() == 1200
    with session_scope() as s:
        assert set(s.scalars(select(Event.uid))) == {e["uid"] for e in sent}
        st_ = send_stats(s, ids["send"])
    assert st_["opens_total_human"] + st_["opens_total_machine"] == 900
    # Against a recount from the raw events: every total is exact, and so is every
    # unique count per kind and bucket (human/unknown vs machine) and per link.  Which
    # hour and class a unique is credited to follows the order in which the two
    # ingesters committed, so only those may differ (docs/tracking.md).
    before = _order_free(*snapshot(ids["send"]))
    with session_scope() as s:
        from newsletter.tracking.rollups import rebuild

        rebuild(s, ids["send"])
    assert _order_free(*snapshot(ids["send"])) == before


def _order_free(rollups, links, firsts):  # type: ignore[no-untyped-def]
    totals = {k: t for k, (t, _u) in rollups.items()}
    uniq: dict[tuple[str, ...], int] = {}
    for k, (_t, u) in rollups.items():
        if len(k) == 4:  # (variant, domain group, kind, class): the segment rollup
            b = (k[2], "m" if k[3] == "machine" else "h")
            uniq[b] = uniq.get(b, 0) + u
    link_uniq: dict[tuple[int, str], int] = {}
    for (pos, cls), (_t, u) in links.items():
        b2 = (pos, "m" if cls == "machine" else "h")
        link_uniq[b2] = link_uniq.get(b2, 0) + u
    link_totals = {k: t for k, (t, _u) in links.items()}
    opened = {d for d, (o, _c) in firsts.items() if o is not None}
    clicked = {d for d, (_o, c) in firsts.items() if c is not None}
    return totals, uniq, link_totals, link_uniq, opened, clicked
