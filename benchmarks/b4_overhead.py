"""B4's overhead in one process: what sending costs beyond B3's build + DKIM.

The worker's CPU per message in ``b4_send.py`` moves ±10% from run to run (Celery, several
processes, PostgreSQL and smtp-sink sharing two cores), which hides a change worth
0.02 ms. This drives the same code in one process, without Celery: a send is planned and
then stepped batch after batch (``run.step``, what the worker's task runs) to Postfix
smtp-sink, DKIM on, and the process's CPU time is read around the sending. B3's build +
DKIM is timed in the same process first; the figure to shrink is the difference, the
cost of everything that is not building and signing the message.

    .venv/bin/python benchmarks/b4_overhead.py [--recipients 6000] [--runs 3] [--inline]

``--inline``: build in the sending thread (as with more processes than cores) instead of
the builder thread.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import drop_database, print_result, scratch_database  # noqa: E402

REDIS = "redis://127.0.0.1:6379/0"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one_run(recipients: int, port: int, tmp: Path) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, messages received) of one send of ``recipients``."""
    from b4_send import seed, sink_count, start_sink

    from newsletter.core.config import Settings, reset_settings
    from newsletter.core.db import dispose
    from newsletter.delivery import run

    db = scratch_database("ovh")
    out = tmp / f"sink-{uuid.uuid4().hex[:6]}.out"
    sink = start_sink(port, out)
    try:
        reset_settings(
            Settings(
                var_dir=tmp,
                database_url=db.url,
                broker_url=REDIS,
                redis_url=REDIS,
                redis_prefix=f"nlovh:{uuid.uuid4().hex[:6]}:",
                smtp_host="127.0.0.1",
                smtp_port=port,
                batch_size=500,
                base_url="https://news.example.org",
            )
        )
        send_id, _size = seed(db.url, recipients)
        run.start(send_id)
        c0, w0, t0 = cpu(), time.perf_counter(), time.thread_time()
        while run.step(send_id).action == "again":
            pass
        used, wall = cpu() - c0, time.perf_counter() - w0
        print(
            f"  the sending thread: {(time.thread_time() - t0) / recipients * 1000:.3f} ms a message"
        )
        dispose()
        sink.terminate()
        sink.wait()
        return used, wall, sink_count(out)
    finally:
        if sink.poll() is None:
            sink.kill()
        drop_database(db)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipients", type=int, default=6000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--inline", action="store_true", help="build in the sending thread")
    args = ap.parse_args()
    os.environ["NL_BUILD_AHEAD"] = "0" if args.inline else "1"
    tmp = Path(tempfile.mkdtemp())
    key = tmp / "dkim.pem"
    from newsletter.delivery.dkim_keys import generate_rsa_key

    key.write_bytes(generate_rsa_key(2048))
    key.chmod(0o600)
    os.environ.update(
        {
            "NEWSLETTER_SECRET_KEY": secrets.token_hex(32),
            "NEWSLETTER_DKIM_DOMAIN": "example.org",
            "NEWSLETTER_DKIM_SELECTOR": "b4",
            "NEWSLETTER_DKIM_KEY_FILE": str(key),
        }
    )
    from b3_dkim import cpu_per_message

    from newsletter.core.heap import keep_freed_memory

    keep_freed_memory()  # as the worker does at start (workers/celery_app.py)

    from newsletter.devtools.sink import free_port

    b3 = cpu_per_message(seconds=1.0, rounds=5)["ours"]
    port = free_port()
    over, per, rates = [], [], []
    for i in range(args.runs):
        used, wall, got = one_run(args.recipients, port, tmp)
        if got != args.recipients:
            print(f"run {i + 1}: the sink received {got} of {args.recipients}", file=sys.stderr)
            return 1
        per.append(used / got)
        over.append(used / got - b3)
        rates.append(got / wall)
        print(
            f"run {i + 1}: {used / got * 1000:.3f} ms a message, {(used / got - b3) * 1000:.3f}"
            f" ms over B3 ({b3 * 1000:.3f}), {got / wall:.0f} msg/s",
            flush=True,
        )
    mode = "inline" if args.inline else "builder"
    print(
        f"median: {statistics.median(per) * 1000:.3f} ms a message, "
        f"{statistics.median(over) * 1000:.3f} ms over B3 ({mode})"
    )
    print_result(
        "B4", f"overhead_ms_{mode}", round(statistics.median(over) * 1000, 3), "lower", "ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
