"""B4 on two worker hosts: the end-to-end send of ``b4_send.py``, with the Celery workers
split over two hosts built from network namespaces on this machine.

Hosts (``tests/fleet/netns.py``): ``db`` (its own PostgreSQL cluster and Redis), ``w1``
and ``w2`` (half of the sessions each), ``relay`` (Postfix ``smtp-sink``). Every
connection between them crosses a veth pair and a router namespace, as between
machines. The baseline runs ``smtp-source`` from both worker hosts at once, half of
the sessions and half of the messages each, into the same sink. Target: ≥ 75% of the
baseline's rate, counted at the sink, 0 lost, 0 duplicates. All hosts share this
machine's cores, so it measures the cost of the network path and of the split, not
more hardware.

Usage (as root): python benchmarks/b4_fleet.py [--recipients 20000] [--sessions 2]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import CpuMeter  # noqa: E402
from b4_send import KINDS, report, seed, sink_count, timed_send  # noqa: E402

from tests.fleet import cluster  # noqa: E402
from tests.fleet.netns import Fabric, Host, available  # noqa: E402


def _sink(fab: Fabric, relay: Host) -> tuple[object, Path]:
    out = fab.workdir / "logs" / f"smtp-sink-{len(fab.procs)}.log"
    proc = fab.start(relay, ["smtp-sink", "-c", "-u", "nobody", f"{relay.addr}:{cluster.SMTP_PORT}",
                             "256"], log="smtp-sink")  # fmt: skip
    time.sleep(0.5)
    return proc, out


def _baseline(fab: Fabric, hosts: list[Host], relay: Host, size: int, messages: int,
              sessions: int) -> float:  # fmt: skip
    per = max(1, sessions // len(hosts))
    t0 = time.perf_counter()
    procs = [
        fab.start(
            h,
            [
                "smtp-source",
                "-s",
                str(per),
                "-l",
                str(size),
                "-m",
                str(messages // len(hosts)),
                "-f",
                "news@example.org",
                "-t",
                "reader@example.com",
                f"{relay.addr}:{cluster.SMTP_PORT}",
            ],
            log=f"smtp-source-{h.name}",
        )
        for h in hosts
    ]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("smtp-source failed (see its log)")
    return (messages // len(hosts)) * len(hosts) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipients", type=int, default=20_000)
    ap.add_argument("--sessions", type=int, default=2, help="in all, split over the two hosts")
    ap.add_argument("--baseline-messages", type=int, default=10_000)
    ap.add_argument(
        "--batch",
        type=int,
        default=500,
        help="deliveries per claimed batch (the product's default is 200)",
    )
    ap.add_argument("--no-dkim", action="store_true")
    args = ap.parse_args()

    batch = args.batch
    why = available()
    if why is not None:
        raise SystemExit(f"B4 on two hosts cannot run here: {why}")
    subprocess.run([str(ROOT / "scripts" / "install-system-deps.sh")], check=True)

    from newsletter.core.config import Settings, reset_settings
    from newsletter.core.db import dispose

    work = Path(f"/tmp/b4fleet-{secrets.token_hex(3)}")
    work.mkdir(mode=0o755)
    try:
        with Fabric(work) as fab:
            db, w1, w2, relay = (fab.add_host(n) for n in ("db", "w1", "w2", "relay"))
            url = cluster.start_postgres(fab, db, work)
            broker = cluster.start_redis(fab, db, work)
            prefix = f"nlbench:{uuid.uuid4().hex[:6]}:"
            cfg = Settings(var_dir=work / "var", database_url=url, broker_url=broker,
                           redis_url=broker, redis_prefix=prefix, smtp_host=relay.addr,
                           smtp_port=cluster.SMTP_PORT, send_parallelism=args.sessions,
                           batch_size=batch, base_url="https://news.example.org")  # fmt: skip
            reset_settings(cfg)
            t0 = time.perf_counter()
            send_id, size = seed(url, args.recipients)
            print(
                f"seeded {args.recipients:,} subscribers in {time.perf_counter() - t0:.1f}s; "
                f"message ≈ {size / 1000:.0f} KB",
                flush=True,
            )
            sink, _ = _sink(fab, relay)
            with CpuMeter(KINDS) as base_cpu:
                base_rate = _baseline(fab, [w1, w2], relay, size, args.baseline_messages,
                                      args.sessions)  # fmt: skip
            os.killpg(sink.pid, signal.SIGTERM)  # type: ignore[attr-defined]
            sink.wait()  # type: ignore[attr-defined]
            _sink_proc, out = _sink(fab, relay)
            base = {
                "NEWSLETTER_SECRET_KEY": secrets.token_hex(32),
                "NEWSLETTER_REDIS_PREFIX": prefix,
                "NEWSLETTER_SMTP_HOST": relay.addr,
                "NEWSLETTER_SMTP_PORT": str(cluster.SMTP_PORT),
                "NEWSLETTER_SEND_PARALLELISM": str(args.sessions),
                "NEWSLETTER_BATCH_SIZE": str(batch),
                "NEWSLETTER_BASE_URL": cfg.base_url,
            }
            if os.environ.get("NEWSLETTER_SEND_GROUP_SIZE"):
                base["NEWSLETTER_SEND_GROUP_SIZE"] = os.environ["NEWSLETTER_SEND_GROUP_SIZE"]
            if not args.no_dkim:
                from newsletter.delivery.dkim_keys import generate_rsa_key

                key = work / "dkim.pem"
                key.write_bytes(generate_rsa_key(2048))
                key.chmod(0o644)
                base.update({"NEWSLETTER_DKIM_DOMAIN": "example.org",
                             "NEWSLETTER_DKIM_SELECTOR": "b4",
                             "NEWSLETTER_DKIM_KEY_FILE": str(key)})  # fmt: skip
            per = max(1, args.sessions // 2)
            for n, h in enumerate((w1, w2), 1):
                cluster.start_worker(fab, h, cluster.host_env(base, db, db, work, h), n, per)
            time.sleep(4)
            run = timed_send(url, broker, prefix, send_id)
            received = sink_count(out)
            dispose()
    finally:
        reset_settings(None)
        shutil.rmtree(work, ignore_errors=True)
    title = (
        f"B4 on two worker hosts (network namespaces) — {args.recipients:,} recipients, "
        f"{size / 1000:.0f} KB messages, {args.sessions} sessions ({per} per host), "
        f"DKIM {'off' if args.no_dkim else 'on (RSA-2048)'}, batch {batch}"
    )
    return report(
        title,
        run,
        recipients=args.recipients,
        received=received,
        baseline=(
            f"smtp-source from both hosts ({args.baseline_messages:,} msgs)",
            base_rate,
            base_cpu,
            args.baseline_messages,
        ),
        ours="plan + send, workers on w1 and w2",
        sessions=args.sessions,
        prefix="fleet_",
    )


if __name__ == "__main__":
    sys.exit(main())
