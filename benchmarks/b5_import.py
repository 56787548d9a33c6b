"""B5: import 1,000,000 subscribers (GBK CSV, 1% invalid rows) into PostgreSQL.

Baseline in the same run: PostgreSQL ``COPY`` of the same rows, already clean
and in UTF-8, into an identical fresh table.  Target: no more than 3× the COPY
time, and a peak RSS of the importing process ≤ 300 MB.

Usage: python benchmarks/b5_import.py [--rows N] [--pg postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import drop_database, print_result, scratch_database  # noqa: E402

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建文玲红宇浩然思远晓雨欣怡子涵梓萱"
CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "重庆"]


def make_rows(n: int, seed: int = 7) -> list[tuple[str, str, str, str]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        name = rnd.choice(SURNAMES) + rnd.choice(GIVEN) + (rnd.choice(GIVEN) if i % 2 else "")
        email = f"user{i}.{rnd.randrange(10**6)}@example{i % 97}.com"
        rows.append((email, name, "简体" if i % 4 else "繁体", rnd.choice(CITIES)))
    return rows


def write_gbk(rows: list[tuple[str, str, str, str]], path: Path, invalid_every: int = 100) -> int:
    bad = 0
    with path.open("w", encoding="gbk", newline="") as fh:
        fh.write("邮箱,姓名,版本,城市\r\n")
        for i, (email, name, variant, city) in enumerate(rows):
            if i % invalid_every == 0:
                email = email.replace("@", " at ")  # 1% invalid addresses
                bad += 1
            fh.write(f"{email},{name},{variant},{city}\r\n")
    return bad


def baseline_copy(url: str, rows: list[tuple[str, str, str, str]]) -> float:
    import psycopg

    buf = io.StringIO()
    for email, name, variant, city in rows:
        buf.write(
            f"{email}\t{name}\t{'zh-Hant' if variant == '繁体' else 'zh-Hans'}\t"
            f'{{"城市": "{city}"}}\n'
        )
    data = buf.getvalue().encode()
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE copy_target (id bigserial primary key, email text unique, "
            "name text, variant text, attributes jsonb)"
        )
        conn.execute("CHECKPOINT")  # both runs start with no dirty buffers and fresh WAL
        t0 = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY copy_target (email, name, variant, attributes) FROM STDIN") as cp,
        ):
            for i in range(0, len(data), 1 << 20):
                cp.write(data[i : i + (1 << 20)])
        return time.perf_counter() - t0


def run_import(url: str, csv_path: Path) -> tuple[float, int, dict[str, object]]:
    """Run the real CLI in a child process; returns (seconds, peak RSS KB, summary)."""
    env = {
        **os.environ,
        "NEWSLETTER_SECRET_KEY": secrets.token_hex(32),
        "NEWSLETTER_DATABASE_URL": url,
        "NEWSLETTER_VAR_DIR": tempfile.mkdtemp(),
    }
    code = (
        "import json,sys,time\n"
        "from newsletter.core.db import upgrade\n"
        "from newsletter.audience.importer import import_file\n"
        "upgrade()\n"
        "from newsletter.core.db import session_scope\n"
        "from sqlalchemy import text\n"
        "with session_scope() as s: s.execute(text('CHECKPOINT'))\n"
        "t0=time.perf_counter()\n"
        f"s=import_file({str(csv_path)!r}, 'bench', report_path={str(csv_path)!r}+'.errors.csv')\n"
        "dt=time.perf_counter()-t0\n"
        "d=s.as_dict()\n"
        # Peak RSS of this process image: VmHWM.  (getrusage's ru_maxrss would also count
        # the parent's RSS, which Linux carries across fork and exec.)
        "hwm=[l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(json.dumps({'seconds':dt,'rss':int(hwm.split()[1]),"
        "'summary':{k:d[k] for k in ('rows','new','invalid','duplicate')}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    import json

    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["seconds"], res["rss"], res["summary"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    db = scratch_database(admin=args.pg)
    url = db.url
    try:
        rows = make_rows(args.rows)
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "subscribers-gbk.csv"
            bad = write_gbk(rows, path)
            size = path.stat().st_size
            good = [r for i, r in enumerate(rows) if i % 100]
            t_copy = baseline_copy(url, good)
            t_ours, rss_kb, summary = run_import(url, path)
        ratio = t_ours / t_copy
        rss_mb = rss_kb / 1024
        ok = (
            ratio <= 3.0
            and rss_mb <= 300
            and summary["new"] == len(good)
            and summary["invalid"] == bad
        )
        print(
            f"B5 subscriber import — {args.rows:,} rows, GBK, {size / 1e6:.1f} MB, {bad:,} invalid"
        )
        print("| what | value |")
        print("|---|---|")
        print(f"| baseline: COPY of clean UTF-8 rows | {t_copy:.2f} s |")
        print(f"| ours: newsletter import (GBK, validation, report) | {t_ours:.2f} s |")
        print(f"| ratio (target ≤ 3×) | {ratio:.2f}× |")
        print(f"| peak RSS of the importer (target ≤ 300 MB) | {rss_mb:.0f} MB |")
        print(f"| summary | {summary} |")
        print(f"| nproc | {os.cpu_count()} |")
        print(f"| result | {'PASS' if ok else 'FAIL'} |")
        print_result("B5", "ratio_to_copy", round(ratio, 2), "lower", "x")
        print_result("B5", "peak_rss_mb", round(rss_mb), "lower", "MB")
        # rows the import counted wrongly (new or invalid ≠ what the file holds)
        wrong = abs(summary["new"] - len(good)) + abs(summary["invalid"] - bad)  # type: ignore[operator]
        print_result("B5", "miscounted_rows", wrong, "lower", "count")
        return 0 if ok else 1
    finally:
        drop_database(db)


if __name__ == "__main__":
    sys.exit(main())
