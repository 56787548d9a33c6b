#!/usr/bin/env python3
"""B1: render one ~30,000-character issue to every channel, once per variant.

Renders email (HTML + text), WeChat articles and the web page with
``newsletter.render.render_all`` for zh-Hans and zh-Hant, ~20 times each, on
one core, and prints a table (median and p90 ms against the 300 ms target,
nproc).  Inputs: the generated ~28,900-character brief (tests/render/
render_factory.py) — the size B1 specifies — and, when the parser is present,
examples/issue-sample.md.  Exits 1 if any median misses the target.

    .venv/bin/python benchmarks/b1_render.py [--repeat 20]
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
sys.path.insert(0, str(ROOT / "tests" / "render"))

from _common import print_result  # noqa: E402

from newsletter.content.model import Issue  # noqa: E402
from newsletter.render import RenderContext, render_all  # noqa: E402

TARGET_MS = 300.0


def _variants(issue: Issue) -> list[Issue]:
    try:
        from newsletter.content.variants import to_variant
    except ImportError:  # no OpenCC conversion available: same text, Hant labels/URLs
        import copy

        hant = copy.deepcopy(issue)
        hant.variant = "zh-Hant"
        return [issue, hant]
    return [to_variant(issue, "zh-Hans"), to_variant(issue, "zh-Hant")]


def _inputs() -> list[tuple[str, Issue]]:
    from render_factory import make_issue

    out = [("generated", make_issue())]
    sample = ROOT / "examples" / "issue-sample.md"
    try:
        from newsletter.content.parser import load_issue
    except ImportError:
        return out
    if sample.exists():
        out.append(("issue-sample.md", load_issue(sample)[0]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    ctx = RenderContext(
        base_url="https://news.example.org",
        publication_name="营商环境政策周报",
        publication_slug="weekly",
        postal_address="上海市黄浦区示例路 1 号 200001",
        sender_name="示例研究院",
    )
    rows = []
    failed = False
    worst = 0.0  # the slowest median of any input and variant
    for name, issue in _inputs():
        total = 0.0
        for doc in _variants(issue):
            t0 = time.perf_counter()
            result = render_all(doc, ctx)
            cold = (time.perf_counter() - t0) * 1000
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                render_all(doc, ctx)
                times.append((time.perf_counter() - t0) * 1000)
            med = statistics.median(times)
            p90 = sorted(times)[max(0, int(len(times) * 0.9) - 1)]
            total += med
            worst = max(worst, med)
            ok = med <= TARGET_MS
            failed |= not ok
            rows.append(
                (
                    name,
                    doc.variant,
                    f"{doc.char_count():,}",
                    result.email.mode,
                    str(len(result.wechat)),
                    f"{cold:.1f}",
                    f"{med:.1f}",
                    f"{p90:.1f}",
                    f"{TARGET_MS:.0f}",
                    "ok" if ok else "MISSED",
                )
            )
        rows.append((name, "both", "", "", "", "", f"{total:.1f}", "", "", "(sum of medians)"))
    head = (
        "input",
        "variant",
        "chars",
        "email",
        "wechat",
        "cold ms",
        "median ms",
        "p90 ms",
        "target ms",
        "result",
    )
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join
    print(
        f"B1 render: render_all() to every channel, {args.repeat} runs per variant, one core "
        f"(nproc {os.cpu_count()})"
    )
    print(line(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line("-" * w for w in widths))
    for r in rows:
        print(line(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print_result("B1", "render_worst_median_ms", round(worst, 1), "lower", "ms")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
