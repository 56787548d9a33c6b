#!/usr/bin/env python3
"""B1 on real input: import + render of the customer's real brief, both variants.

Reads tests/content/fixtures/real-brief-2021-08-02.txt (a copy of
../shared/samples/real-brief-2021-08-02.txt, 29,478 characters of Traditional
Chinese with page chrome), and times, in process on one core:

    import_text → parse_issue → to_variant(zh-Hans) + render_channels
                              → to_variant(zh-Hant) + render_channels

Prints the median, p90 and the first (cold) run against the 300 ms target,
with the share of each stage, and exits 1 when the median misses it.

    .venv/bin/python benchmarks/b1_real.py [--repeat 20] [--file PATH]
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

from _common import print_result  # noqa: E402

from newsletter.content.parser import parse_issue  # noqa: E402
from newsletter.content.script import to_hans  # noqa: E402
from newsletter.content.textimport import import_text  # noqa: E402
from newsletter.content.variants import to_variant  # noqa: E402
from newsletter.render import RenderContext, render_channels  # noqa: E402

TARGET_MS = 300.0
REAL = ROOT / "tests" / "content" / "fixtures" / "real-brief-2021-08-02.txt"


def once(text: str) -> dict[str, float]:
    to_hans.cache_clear()  # no carry-over between runs: each run is a fresh issue
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    doc = parse_issue(import_text(text).markdown)
    t["import+parse"] = time.perf_counter() - t0
    for variant in ("zh-Hans", "zh-Hant"):
        t1 = time.perf_counter()
        v = to_variant(doc, variant)
        ctx = RenderContext(
            base_url="https://news.example.org",
            publication_name=v.publication,
            publication_slug="weekly",
            postal_address="示例路 1 号",
            sender_name=v.source,
        )
        result = render_channels(v, ctx)
        if result.errors:
            raise SystemExit(f"{variant}: {result.errors}")
        t[variant] = time.perf_counter() - t1
    t["total"] = time.perf_counter() - t0
    return {k: v * 1000 for k, v in t.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--file", type=Path, default=REAL)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    text = args.file.read_text(encoding="utf-8")
    cold = once(text)
    runs = [once(text) for _ in range(args.repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in cold}
    p90 = statistics.quantiles([r["total"] for r in runs], n=10)[-1]
    ok = med["total"] < TARGET_MS
    print(
        f"B1 on real input — {args.file.name}, {len(text):,} characters, "
        f"{args.repeat} runs on one core (nproc {os.cpu_count()})"
    )
    print("| stage | median ms |")
    print("| --- | --- |")
    for k in ("import+parse", "zh-Hans", "zh-Hant"):
        print(
            f"| {k} (+ render every channel) | {med[k]:.0f} |"
            if k != "import+parse"
            else f"| {k} | {med[k]:.0f} |"
        )
    print(f"| total | {med['total']:.0f} (p90 {p90:.0f}, cold first run {cold['total']:.0f}) |")
    print(f"| target | < {TARGET_MS:.0f} ms |")
    print(f"| result | {'PASS' if ok else 'FAIL'} |")
    print_result("B1", "real_total_median_ms", round(med["total"], 1), "lower", "ms")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
