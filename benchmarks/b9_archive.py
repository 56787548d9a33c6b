#!/usr/bin/env python3
"""B9: archive search with 1,000 published issues on PostgreSQL (pg_trgm), p95 < 100 ms.

Builds a throwaway database, stores 1,000 sent issues (the sample issue with a
different number and one phrase unique to each issue, in the middle of an item),
indexed in both variants, then times ``GET /archive/weekly/search?q=…`` through
the real app for: a phrase found in one issue only, a phrase found in every
issue, and a phrase found nowhere.  Prints the plan of the rare search (the
trigram index must be used).  Exits 1 if a p95 misses the target.

    .venv/bin/python benchmarks/b9_archive.py [--issues 1000] [--runs 50]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from _common import drop_database, print_result, scratch_database  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import text  # noqa: E402

from newsletter.content.model import Block  # noqa: E402
from newsletter.content.parser import load_issue  # noqa: E402
from newsletter.content.variants import convert_text, to_variant  # noqa: E402
from newsletter.core.config import Settings, reset_settings  # noqa: E402
from newsletter.core.db import dispose, session_scope, upgrade  # noqa: E402
from newsletter.issues.archive import index_issue, like_pattern  # noqa: E402
from newsletter.models import Issue, Publication  # noqa: E402
from newsletter.web.app import create_app  # noqa: E402

P95_MS = 100.0
DIGITS = "零一二三四五六七八九"


def phrase(n: int) -> str:
    """A phrase unique to issue n (Chinese numerals, so no ASCII shortcut)."""
    return "试点城市编号" + "".join(DIGITS[int(c)] for c in f"{n:04d}") + "号示范区"


def log(msg: str) -> None:
    sys.stderr.write(f"[b9] {msg}\n")


def populate(n_issues: int) -> None:
    doc, _warnings = load_issue(ROOT / "examples" / "issue-sample.md")
    with session_scope() as s:
        pub = Publication(
            slug="weekly",
            name=doc.publication,
            from_name="周报",
            from_address="news@example.org",
            list_id_domain="weekly.example.org",
        )
        s.add(pub)
        s.flush()
        docs = {v: to_variant(doc, v) for v in ("zh-Hans", "zh-Hant")}  # convert once
        for n in range(1, n_issues + 1):
            issue = Issue(
                publication_id=pub.id,
                number=n,
                title=f"{doc.title}（第{n}期）",
                source_text="",
                source_hash="0" * 64,
                status="sent",
            )
            s.add(issue)
            s.flush()
            for variant, vdoc in docs.items():
                d = copy.deepcopy(vdoc)
                d.number = n
                item = d.sections[0].items[n % len(d.sections[0].items)]
                mid = len(item.body) // 2
                p = phrase(n) if variant == "zh-Hans" else convert_text(phrase(n))
                text_ = f"本项措施在{p}先行先试，并将逐步推广。"
                item.body.insert(mid, Block(kind="paragraph", html=text_, text=text_))
                index_issue(s, issue.id, d, variant)
            if n % 100 == 0:
                s.commit()
                log(f"{n} issues")


def timed(client: TestClient, q: str, runs: int) -> tuple[list[float], str]:
    out = []
    body = ""
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get("/archive/weekly/search", params={"q": q})
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text[:200]
        body = r.text
    return out, body


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--issues", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    rare = args.issues // 2  # the issue whose phrase is searched for (500 of 1,000)
    db = scratch_database("b9")
    url = db.url
    ok = True
    try:
        reset_settings(
            Settings(
                database_url=url,
                redis_url="",
                var_dir=Path("/tmp/growth-b9var"),
                secret_key="b9-" + uuid.uuid4().hex,
                base_url="https://news.example.org",
            )
        )
        upgrade(url)
        t = time.perf_counter()
        populate(args.issues)
        with psycopg.connect(db.dsn, autocommit=True) as c:
            c.execute("VACUUM ANALYZE")
            rows = c.execute(
                "SELECT count(*), pg_size_pretty(pg_total_relation_size("
                "'archive_entry')) FROM archive_entry"
            ).fetchone()
        log(
            f"{args.issues} issues, {rows[0]} search rows ({rows[1]}) in "
            f"{time.perf_counter() - t:.0f} s"
        )
        with session_scope() as s:
            plan = (
                s.execute(
                    text(
                        "EXPLAIN SELECT id FROM archive_entry WHERE body ILIKE :p OR title ILIKE :p"
                    ),
                    {"p": like_pattern(phrase(rare))},
                )
                .scalars()
                .all()
            )
        print("plan of the rare search:\n  " + "\n  ".join(plan))
        client = TestClient(create_app(), base_url="https://testserver")
        cases = [  # (label, query, text the page must show, RESULT metric)
            ("rare (one issue)", phrase(rare)[2:12], f"/archive/weekly/{rare}#", "rare"),
            ("common (every issue)", "原始数据不出域", f"/archive/weekly/{args.issues}#", "common"),
            ("absent", "量子引力波监管沙盒", "没有找到相关内容", "absent"),
        ]
        print(f"| query | p50 ms | p95 ms | target p95 | nproc {os.cpu_count()} |")
        print("|---|---|---|---|---|")
        results = []
        for label, q, expect, metric in cases:
            timed(client, q, 3)  # warm
            ms, body = timed(client, q, args.runs)
            good = p95(ms) < P95_MS and expect in body
            ok = ok and good
            print(
                f"| {label}: {q} | {statistics.median(ms):.1f} | {p95(ms):.1f} | "
                f"< {P95_MS:.0f} | {'PASS' if good else 'FAIL'} |"
            )
            results.append((metric, p95(ms), expect in body))
        for metric, ms95, _found in results:
            print_result("B9", f"{metric}_p95_ms", round(ms95, 1), "lower", "ms")
        print_result("B9", "wrong_pages", sum(not found for *_, found in results), "lower", "count")
    finally:
        dispose()
        reset_settings(None)
        drop_database(db)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
