"""Services of the partition harness: PostgreSQL, Redis, SMTP sinks and the newsletter's
own processes, each started inside a host of a :class:`~tests.fleet.netns.Fabric`.

Each service listens on its host's address for the other hosts and, for PostgreSQL
and Redis, on a Unix socket under the harness's work directory for the harness
itself (seeding, starting the send, counting), which no partition can cut.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import clean_env
from tests.fleet.netns import Fabric, Host

ROOT = Path(__file__).resolve().parents[2]
PG_PORT = 5432
REDIS_PORT = 6379
SMTP_PORT = 2525


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return found


def start_postgres(fab: Fabric, host: Host, work: Path) -> str:
    """A fresh cluster on ``host`` (run as the ``postgres`` user: it refuses root), trusting
    the fabric's network. Returns the harness's SQLAlchemy URL (over the Unix socket)."""
    data, sock = work / "pgdata", work / "pgsock"
    for d in (data, sock):
        d.mkdir(mode=0o700)
        shutil.chown(d, "postgres", "postgres")
    subprocess.run(
        ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", _pg_bin("initdb"),
         "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale",
         "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write("host all all 10.19.0.0/16 trust\n")
    fab.start(
        host,
        [_pg_bin("postgres"), "-D", str(data), "-c", f"listen_addresses={host.addr}",
         "-c", f"port={PG_PORT}", "-c", f"unix_socket_directories={sock}",
         "-c", "max_connections=200", "-c", "fsync=off", "-c", "full_page_writes=off",
         "-c", "synchronous_commit=off", "-c", "shared_buffers=128MB"],
        user="postgres", log="postgres",
    )  # fmt: skip
    url = f"postgresql+psycopg://postgres@/postgres?host={sock}&port={PG_PORT}"
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(f"host={sock} port={PG_PORT} user=postgres dbname=postgres").close()
            return url
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_redis(fab: Fabric, host: Host, work: Path) -> str:
    """Redis on ``host`` (broker, buckets, events). Returns the harness's broker URL."""
    sock = work / "redis.sock"
    fab.start(
        host,
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--bind", host.addr,
         "--port", str(REDIS_PORT), "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", str(work)],
        log="redis",
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not sock.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("redis did not start")
        time.sleep(0.1)
    return f"redis+socket://{sock}"


def start_sink(fab: Fabric, host: Host, out: Path) -> subprocess.Popen[Any]:
    proc = fab.start(host, [sys.executable, str(ROOT / "tests/fleet/relay_sink.py"), host.addr,
                            str(SMTP_PORT), str(out)], log=f"sink-{host.name}", cwd=ROOT)  # fmt: skip
    out.touch()
    return proc


def host_env(base: dict[str, str], db: Host, redis: Host, work: Path, host: Host) -> dict[str, str]:
    """The environment of a newsletter process on ``host``: it reaches PostgreSQL and Redis
    over the fabric, like a process on another machine."""
    env = clean_env()
    env.update(base)
    env.update({
        "NEWSLETTER_DATABASE_URL": f"postgresql+psycopg://postgres@{db.addr}:{PG_PORT}/postgres",
        "NEWSLETTER_BROKER_URL": f"redis://{redis.addr}:{REDIS_PORT}/0",
        "NEWSLETTER_REDIS_URL": f"redis://{redis.addr}:{REDIS_PORT}/0",
        "NEWSLETTER_VAR_DIR": str(work / f"var-{host.name}"),
    })  # fmt: skip
    return env


def start_worker(
    fab: Fabric, host: Host, env: dict[str, str], n: int, concurrency: int = 2
) -> subprocess.Popen[Any]:
    queue = env["NEWSLETTER_REDIS_PREFIX"] + "default"
    return fab.start(
        host,
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", queue,
         "-c", str(concurrency), "--loglevel=info", "-n", f"{host.name}-{n}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, log=f"worker-{host.name}", cwd=ROOT,
    )  # fmt: skip


def start_beat(fab: Fabric, host: Host, env: dict[str, str], work: Path) -> subprocess.Popen[Any]:
    return fab.start(
        host,
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat", "--loglevel=warning",
         "-s", str(work / "beat-schedule")],
        env=env, log="beat", cwd=ROOT,
    )  # fmt: skip


def start_web(fab: Fabric, host: Host, env: dict[str, str]) -> subprocess.Popen[Any]:
    return fab.start(host, [str(Path(sys.executable).parent / "newsletter"), "web", "--host", host.addr,
                            "--port", "8000"], env=env, log="web", cwd=ROOT)  # fmt: skip
