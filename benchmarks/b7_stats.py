#!/usr/bin/env python3
"""B7: stats for one send with 1,000,000 deliveries and 5,000,000 events, against a raw GROUP BY.

Builds a throwaway PostgreSQL database (generate_series), stores 5M raw events,
builds the rollups with :func:`newsletter.tracking.rollups.rebuild` (one GROUP
BY, the same numbers the ingester keeps incrementally), then times
``send_stats`` (rollups + cached audience) against the naive GROUP BY over the
raw event table computing the same figures, and checks both agree.
Target: p95 ≤ 100 ms and ≥ 50× faster than the baseline.  Exits 1 if missed.

    .venv/bin/python benchmarks/b7_stats.py [--deliveries 1000000] [--events 5000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from _common import drop_database, print_result, scratch_database, sent_send_sql  # noqa: E402
from sqlalchemy import text  # noqa: E402

from newsletter.core.config import Settings, reset_settings  # noqa: E402
from newsletter.core.db import dispose, session_scope, upgrade  # noqa: E402
from newsletter.reports.stats import send_stats  # noqa: E402
from newsletter.tracking.rollups import rebuild  # noqa: E402

P95_MS, RATIO = 100.0, 50.0
DOMAINS = ["qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "hotmail.com",
           "icloud.com", "sina.com", "example.cn", "foxmail.com"]  # fmt: skip

BASELINE = """
SELECT kind, cls, count(*), count(DISTINCT delivery_id) FROM event WHERE send_id = :s
GROUP BY kind, cls;
SELECT date_trunc('hour', occurred_at), count(*) FILTER (WHERE cls <> 'machine'),
       count(*) FILTER (WHERE cls = 'machine') FROM event WHERE send_id = :s AND kind = 'open'
GROUP BY 1 ORDER BY 1;
SELECT link_position, count(*), count(DISTINCT delivery_id) FROM event
WHERE send_id = :s AND kind = 'click' AND cls <> 'machine' GROUP BY 1;
SELECT d.variant, count(DISTINCT e.delivery_id) FROM event e JOIN delivery d ON d.id = e.delivery_id
WHERE e.send_id = :s AND e.kind = 'open' AND e.cls <> 'machine' GROUP BY 1;
SELECT state, count(*) FROM delivery WHERE send_id = :s GROUP BY state
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def generate(url_pg: str, n_del: int, n_ev: int) -> None:
    with psycopg.connect(url_pg, autocommit=True) as c:
        c.execute("SET synchronous_commit = off")
        c.execute(sent_send_sql("b7", number=47, title="第47期", planned=n_del, days_ago=8))
        c.execute("""
            INSERT INTO link (issue_id, position, url, text)
            SELECT 1, g, 'https://www.gov.cn/zhengce/' || g || '.htm', '文件' || g
            FROM generate_series(1, 20) g
        """)
        doms = "ARRAY[" + ",".join(f"'{d}'" for d in DOMAINS) + "]"
        log(f"subscribers: {n_del:,}")
        c.execute(f"""
            INSERT INTO subscriber (id, email, name, variant, attributes, status, source,
                created_at, updated_at)
            SELECT g, 'r' || g || '@' || ({doms})[1 + g % {len(DOMAINS)}], '',
                   CASE WHEN g % 3 = 0 THEN 'zh-Hant' ELSE 'zh-Hans' END, '{{}}', 'active', 'b7',
                   now(), now()
            FROM generate_series(1, {n_del}) g""")
        log(f"deliveries: {n_del:,}")
        c.execute(f"""
            INSERT INTO delivery (id, send_id, subscriber_id, variant, state, attempts, sent_at,
                at_risk)
            SELECT g, 1, g, CASE WHEN g % 3 = 0 THEN 'zh-Hant' ELSE 'zh-Hans' END,
                   CASE WHEN g % 100 = 0 THEN 'bounced' ELSE 'sent' END, 1,
                   timestamptz '2026-11-23 01:00:00+00', false
            FROM generate_series(1, {n_del}) g""")
        log(f"events: {n_ev:,}")
        step = 1_000_000
        for lo in range(1, n_ev + 1, step):
            hi = min(n_ev, lo + step - 1)
            c.execute(f"""
                INSERT INTO event (uid, send_id, delivery_id, kind, link_position, occurred_at,
                    cls, rule, ip_hash, user_agent)
                SELECT 'b7-' || g, 1, 1 + (g::bigint * 7919) % {n_del}, k,
                       CASE WHEN k = 'click' THEN 1 + g % 20 END,
                       timestamptz '2026-11-23 01:00:00+00'
                         + ((g::bigint * 104729) % (7 * 86400)) * interval '1 second',
                       CASE WHEN (g / 7) % 10 < 3 THEN 'machine' WHEN (g / 7) % 10 = 3 THEN 'unknown'
                            ELSE 'human' END,
                       'b7', NULL, NULL
                FROM (SELECT g, CASE WHEN g % 100 < 78 THEN 'open' WHEN g % 100 < 98 THEN 'click'
                                     WHEN g % 100 = 98 THEN 'unsubscribe' ELSE 'complaint' END k
                      FROM generate_series({lo}, {hi}) g) x""")
            log(f"  … {hi:,}")
        c.execute("ANALYZE")


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deliveries", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--baseline-runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = ap.parse_args()
    db = scratch_database("b7")
    url = db.url
    t_all = time.perf_counter()
    try:
        reset_settings(Settings(database_url=url, redis_url="", var_dir=Path("/tmp/b7var")))
        upgrade(url)
        generate(db.dsn, args.deliveries, args.events)
        log("rollups: rebuild (one GROUP BY over the raw events)")
        t = time.perf_counter()
        with session_scope() as s:
            s.execute(text("SET LOCAL work_mem = '256MB'"))
            rebuild(s, 1)
        t_rebuild = time.perf_counter() - t
        with psycopg.connect(db.dsn, autocommit=True) as c:
            c.execute("VACUUM ANALYZE")
        t_gen = time.perf_counter() - t_all
        log(f"data ready in {t_gen:.0f} s (rebuild {t_rebuild:.0f} s)")

        def ours() -> dict:  # type: ignore[type-arg]
            with session_scope() as s:
                return send_stats(s, 1)

        t = time.perf_counter()
        first = ours()  # computes and caches the per-segment delivery counts
        cold_ms = (time.perf_counter() - t) * 1000
        ours_ms = timed(ours, args.runs)
        baseline_result: list = []  # type: ignore[type-arg]

        def baseline() -> None:
            baseline_result.clear()
            with session_scope() as s:
                for q in BASELINE.split(";"):
                    baseline_result.append(s.execute(text(q), {"s": 1}).all())

        base_ms = timed(baseline, args.baseline_runs)
        # Reconcile: the rollups say what the raw GROUP BY says.
        kinds = baseline_result[0]
        raw_human_open_total = sum(n for k, c, n, _ in kinds if k == "open" and c != "machine")
        raw_machine_open_total = sum(n for k, c, n, _ in kinds if k == "open" and c == "machine")
        with session_scope() as s:
            raw_unique = s.scalar(text(
                "SELECT count(DISTINCT delivery_id) FROM event WHERE send_id = 1 "
                "AND kind = 'open' AND cls <> 'machine'"))  # fmt: skip
        link_unique = {pos: u for pos, _n, u in baseline_result[2]}
        checks = {
            "opens_total_human": (first["opens_total_human"], raw_human_open_total),
            "opens_total_machine": (first["opens_total_machine"], raw_machine_open_total),
            "opens_unique": (first["opens_unique"], raw_unique),
            "delivered": (first["delivered"], dict(baseline_result[4]).get("sent")),
        }
        bad = {k: v for k, v in checks.items() if v[0] != v[1]}
        if bad:
            log(f"MISMATCH {bad}")
        ok_data = (
            first["opens_total_human"] == raw_human_open_total
            and first["opens_total_machine"] == raw_machine_open_total
            and first["opens_unique"] == raw_unique
            and {r["position"]: r["unique"] for r in first["links"] if r["unique"]} == link_unique
            and first["delivered"] == dict(baseline_result[4]).get("sent")
        )
    finally:
        dispose()
        reset_settings(None)
        if not args.keep:
            drop_database(db)
    p50 = statistics.median(ours_ms)
    p95 = sorted(ours_ms)[max(0, int(len(ours_ms) * 0.95) - 1)]
    b50 = statistics.median(base_ms)
    ratio = b50 / p50
    ok = p95 <= P95_MS and ratio >= RATIO and ok_data
    rows = [
        ("", "value"),
        ("---", "---"),
        ("data", f"{args.deliveries:,} deliveries, {args.events:,} events "
                  f"(generated + rollups in {t_gen:.0f} s, rebuild {t_rebuild:.0f} s)"),
        ("baseline (GROUP BY over raw events, ms)", f"p50 {b50:,.0f}  (n={len(base_ms)})"),
        ("ours (send_stats from rollups, ms)", f"p50 {p50:.1f}  p95 {p95:.1f}  (n={len(ours_ms)}; "
                                               f"first call {cold_ms:,.0f} ms fills the audience cache)"),
        ("ratio", f"{ratio:,.0f}× (target ≥ {RATIO:.0f}×), p95 target ≤ {P95_MS:.0f} ms"),
        ("figures agree with the raw GROUP BY", "yes" if ok_data else "NO"),
        ("nproc", str(os.cpu_count())),
        ("result", "PASS" if ok else "FAIL"),
    ]  # fmt: skip
    print("B7 stats for one send")
    w = max(len(r[0]) for r in rows)
    for a, b in rows:
        print(f"| {a:<{w}} | {b} |")
    print_result("B7", "speedup", round(ratio, 1), "higher", "x")
    print_result("B7", "p95_ms", round(p95, 1), "lower", "ms")
    print_result("B7", "figures_disagree", 0 if ok_data else 1, "lower", "count")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
