#!/usr/bin/env python3
"""`make bench-quick`: every benchmark at a reduced size, against benchmarks/recorded.json.

Runs each script of SCRIPTS one after another with its quick arguments, collects the
``RESULT {json}`` lines each prints last, and prints one table: the quick value, the
value recorded in benchmarks/README.md (and the commit it was recorded at), and a
verdict.  A metric whose value depends on the size of the run (fixed costs weigh more
at a small size) has a *quick baseline* in recorded.json, measured with these same
arguments; it is compared with that, everything else with the README's value.

A metric more than 20% worse than what it is compared with fails.  Timings swing on a
shared 2-core machine, so a script with a failing metric is run a second time and each
timing keeps the better of its two values (a count of lost, duplicated or wrong items
keeps the worse).  A script that fails to run (exit status other than 0 or 1, or a
timeout) or prints no RESULT line fails too.  Exit status 1 when anything failed.

A script's own exit status says whether it met its target *at quick size*; it is
shown, not judged (the table is).  Full output of each script: benchmarks/out/quick/.

    .venv/bin/python benchmarks/quick.py [SCRIPT ...]    (default: all of them)

Changing a script's quick arguments below invalidates its quick baselines: measure
them again and update recorded.json (the README's section "make bench-quick").
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RECORDED = HERE / "recorded.json"
LOGS = HERE / "out" / "quick"
TOLERANCE = 0.20  # worse than this fraction of the reference fails
TIMEOUT = 300  # seconds per script

#: (script, quick arguments): about 2 minutes in all on the 2-core machine
SCRIPTS = [
    ("b1_render.py", ["--repeat", "5"]),
    ("b1_real.py", ["--repeat", "5"]),
    ("b2_assemble.py", ["--seconds", "1"]),
    ("b3_dkim.py", ["--seconds", "0.5", "--rounds", "5"]),
    ("b4_send.py", ["--recipients", "4000", "--sessions", "2", "--baseline-messages", "2000"]),
    ("b5_import.py", ["--rows", "200000"]),
    ("b6_pixel.py", ["--seconds", "2"]),
    ("b7_stats.py", ["--deliveries", "50000", "--events", "250000", "--runs", "20"]),
    ("b8_console.py", ["--subscribers", "50000", "--issues", "20", "--repeat", "5"]),
    ("b9_archive.py", ["--issues", "100", "--runs", "50"]),
]
#: scripts not run here, and why (printed on every run)
SKIPPED = {
    "b4_fleet.py": "needs root and network namespaces: four hosts with their own PostgreSQL "
    "and Redis, which take longer to build than the whole quick run, and like the partition "
    "harness it must run alone; run it by hand (README, B4)",
}


def git(*args: str) -> str:
    cmd = ["git", "-C", str(ROOT), *args]
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()


def run(script: str, args: list[str], attempt: int) -> tuple[list[dict], str | None]:
    """Run one script and print one line about it; returns (its RESULTs, a failure line)."""
    log = LOGS / f"{script.removesuffix('.py')}{'' if attempt == 1 else f'.{attempt}'}.log"
    cmd = [sys.executable, str(HERE / script), *args]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
    took = time.perf_counter() - t
    log.write_text(f"$ {' '.join(cmd)}\n{out}\n--- stderr\n{err}", encoding="utf-8")
    results = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    status = "timed out" if code is None else f"exit {code}"
    own = " (missed its own target at quick size: shown, not judged)" if code == 1 else ""
    where = log.relative_to(ROOT)
    again = "" if attempt == 1 else " (second run)"
    print(
        f"ran  {script}{again} {' '.join(args)}: {took:.0f} s, {status}{own}, "
        f"{len(results)} RESULT lines; log {where}",
        flush=True,
    )
    if not results or code not in (0, 1):  # 1: its own target missed, anything else: broken
        return [], f"FAIL {script}: {status}, {len(results)} RESULT lines (see {where})"
    return results, None


def reference(rec: dict) -> tuple[float, str]:
    """What a quick value is compared with: the quick baseline if there is one."""
    if rec.get("quick") is not None:
        return rec["quick"], "quick baseline"
    return rec["recorded"], "README"


def worse(value: float, ref: float, better: str) -> bool:
    """More than TOLERANCE worse than ref (with ref 0, any value above it is worse)."""
    if better == "higher":
        return value < ref * (1 - TOLERANCE)
    return value > ref * (1 + TOLERANCE)


def keep(old: dict, new: dict) -> dict:
    """Of two runs' values: the better timing, the worse count."""
    pick = max if (new["better"] == "higher") != (new["unit"] == "count") else min
    return pick(old, new, key=lambda r: r["value"])


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:g}"
    return {"count": text, "ratio": text, "x": f"{text}x", "%": f"{text}%"}.get(
        unit, f"{text} {unit}"
    )


def judge(rec: dict, got: dict | None, ran: set[str]) -> tuple[str, str | None]:
    """The verdict for one recorded metric, and the failure line when it fails."""
    name = f"{rec['bench']} {rec['metric']}"
    if got is None:
        if "not_quick" in rec:
            return "not run", None
        if rec["script"] in SKIPPED:
            return "skipped", None
        if rec["script"] in ran:
            return "FAIL: missing", f"FAIL {rec['script']}: printed no RESULT for {name}"
        return "FAIL: not run", None  # the script failed: its own line says so
    ref, against = reference(rec)
    if not worse(got["value"], ref, rec["better"]):
        return f"ok vs {against}", None
    unit = rec["unit"]
    factor = 1 - TOLERANCE if rec["better"] == "higher" else 1 + TOLERANCE
    line = (
        f"FAIL {name}: {fmt(got['value'], unit)} against {against} {fmt(ref, unit)} "
        f"(limit {fmt(round(ref * factor, 3), unit)}, {rec['better']} is better)"
    )
    return f"FAIL vs {against}", line + (f"\n  note: {rec['note']}" if rec.get("note") else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scripts", nargs="*", help="run only these (e.g. b7_stats.py)")
    only = set(ap.parse_args().scripts)
    unknown = only - {s for s, _ in SCRIPTS} - set(SKIPPED)
    if unknown:
        raise SystemExit(f"unknown scripts: {' '.join(sorted(unknown))}")
    recorded = [
        r
        for r in json.loads(RECORDED.read_text(encoding="utf-8"))["metrics"]
        if not only or r["script"] in only
    ]
    LOGS.mkdir(parents=True, exist_ok=True)
    head = git("rev-parse", "--short", "HEAD") or "?"
    if git("status", "--porcelain", "--untracked-files=no"):
        head += " + uncommitted changes"
    # Benchmarks stay apart from each other (README: flock /tmp/bench.lock); tests do not.
    lock = open("/tmp/bench.lock", "w")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("waiting for /tmp/bench.lock (another benchmark is running)", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    load = os.getloadavg()[0]
    print(
        f"bench-quick at {head}, nproc {os.cpu_count()}, load average {load:.1f} at start",
        flush=True,
    )
    t_all = time.perf_counter()
    for script, reason in SKIPPED.items():
        if not only or script in only:
            print(f"SKIP {script}: {reason}")

    failures: list[str] = []
    measured: dict[tuple[str, str], dict] = {}
    ran: set[str] = set()
    todo = [(s, a) for s, a in SCRIPTS if not only or s in only]
    for script, args in todo:
        results, failure = run(script, args, 1)
        if failure:
            failures.append(failure)
            continue
        ran.add(script)
        measured.update({(r["bench"], r["metric"]): r for r in results})
    # A second chance for the scripts with a failing metric (timings swing on this machine).
    failing = {
        r["script"]
        for r in recorded
        if (got := measured.get((r["bench"], r["metric"])))
        and worse(got["value"], reference(r)[0], r["better"])
    }
    for script, args in todo:
        if script in failing:
            results, failure = run(script, args, 2)
            if failure:
                failures.append(failure)
            for r in results:
                key = (r["bench"], r["metric"])
                measured[key] = keep(measured[key], r) if key in measured else r

    rows = []
    for rec in recorded:
        got = measured.pop((rec["bench"], rec["metric"]), None)
        verdict, failure = judge(rec, got, ran)
        if failure:
            failures.append(failure)
        quick = rec.get("quick")
        rows.append(
            (
                rec["bench"],
                rec["metric"],
                rec["better"],
                fmt(got["value"] if got else None, rec["unit"]),
                fmt(rec["recorded"], rec["unit"]),
                rec["commit"],
                f"{fmt(quick, rec['unit'])} ({rec['quick_commit']})" if quick is not None else "-",
                verdict,
            )
        )
    for (bench, metric), got in measured.items():
        failures.append(f"FAIL {bench} {metric}: not in recorded.json (add its README value)")
        value = fmt(got["value"], got["unit"])
        rows.append((bench, metric, got["better"], value, "-", "-", "-", "FAIL: no record"))

    header = (
        "bench",
        "metric",
        "better",
        "quick value",
        "README value",
        "README commit",
        "quick baseline (commit)",
        "verdict",
    )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    print(
        f"verdict: the quick value against the quick baseline where one is stored (metrics "
        f"that depend on the run's size), else against the README value; more than "
        f"{TOLERANCE:.0%} worse fails (after a second run of its script)"
    )
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print()
    print("\n".join(failures) if failures else "all metrics within 20% of their reference")
    print(f"bench-quick took {time.perf_counter() - t_all:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
