#!/usr/bin/env python3
"""B2: build one recipient's complete ~100 KB CJK message, against the naive build.

Baseline (same run): stdlib ``EmailMessage`` filled per recipient with the
rendered HTML and text, ``as_bytes()``.  Ours: ``CompiledMessage.build`` on a
message compiled once.  One core.  Target: ours ≥ 30× the baseline rate.
Exits 1 if missed.

    .venv/bin/python benchmarks/b2_assemble.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import sys

from _common import (
    compile_sample,
    naive_build,
    nproc,
    one_core,
    print_result,
    rate,
    recipient,
    sample_email,
    table,
)

TARGET = 30.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    one_core()
    html, text, subject, source = sample_email()
    compiled = compile_sample(html, text, subject)
    recips = [recipient(i) for i in range(1000)]
    # Sanity: both builds produce a parseable message with the slots filled.
    _id, ours_msg = compiled.build(recips[0])
    base_msg = naive_build(html, text, subject, recips[0])
    for m in (ours_msg, base_msg):
        parsed = email.message_from_bytes(m, policy=email.policy.default)
        assert parsed.get_body(("html",)) is not None and b"%%" not in m
    base, nb = rate(lambda i: naive_build(html, text, subject, recips[i % 1000]), args.seconds)
    ours, no = rate(lambda i: compiled.build(recips[i % 1000]), args.seconds)
    ratio = ours / base
    print(
        f"B2 message assembly — input: {source}; message {len(ours_msg):,} bytes "
        f"(naive {len(base_msg):,} bytes)"
    )
    print(table([
        ("", "value"),
        ("---", "---"),
        ("baseline (naive EmailMessage, msg/s)", f"{base:,.1f}  ({1000 / base:.2f} ms/msg, n={nb})"),
        ("ours (CompiledMessage.build, msg/s)", f"{ours:,.0f}  ({1e6 / ours:.1f} µs/msg, n={no})"),
        ("ratio", f"{ratio:.1f}× (target ≥ {TARGET:.0f}×)"),
        ("nproc", f"{nproc()} (measured on 1 core)"),
        ("result", "PASS" if ratio >= TARGET else "FAIL"),
    ]))  # fmt: skip
    print_result("B2", "ratio", round(ratio, 1), "higher", "x")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
