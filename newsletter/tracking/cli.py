"""``newsletter tracking …`` and ``newsletter ingest``: the event pipeline's own commands.

tracking retention [--dry-run]       purge raw events past each publication's retention
tracking rebuild SEND                recompute a send's rollups from its raw events
tracking replay-spool                ingest events spooled while Redis and the DB were down
tracking serve-pixel [--host --port --workers]   the lean open-pixel server (docs/operations.md)
ingest [--once]                      consume the event stream into the database

The reading commands of the same group (``show``, ``export``, ``trend``) and the root
``newsletter stats SEND`` read across domains and live in :mod:`newsletter.reports.cli`.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

__all__ = ["commands", "stats_app"]

stats_app = typer.Typer(help="Open/click statistics / 阅读统计", no_args_is_help=True)
commands = typer.Typer()  # top-level commands (ingest): mounted without a name
console = Console()


@stats_app.command("retention")
def retention(dry_run: Annotated[bool, typer.Option("--dry-run")] = False) -> None:
    """Delete raw events older than each publication's retention (rollups stay)."""
    from newsletter.core.db import session_scope
    from newsletter.tracking.retention import purge

    with session_scope() as s:
        result = purge(s)
        if dry_run:
            s.rollback()
    for slug, n in result.items():
        console.print(f"{slug}: {n} events {'would be ' if dry_run else ''}purged")


@stats_app.command("rebuild")
def rebuild_cmd(send_id: int) -> None:
    """Recompute a send's rollups from its raw events (exact while they are all retained)."""
    from newsletter.core.db import session_scope
    from newsletter.tracking.rollups import rebuild

    with session_scope() as s:
        console.print(rebuild(s, send_id))


@stats_app.command("replay-spool")
def replay_spool_cmd() -> None:
    """Ingest events that web processes spooled while Redis and the database were down."""
    from newsletter.tracking.intake import replay_spool

    console.print(f"replayed {replay_spool()} events")


@stats_app.command("serve-pixel")
def serve_pixel_cmd(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8001,
    workers: Annotated[int, typer.Option(help="processes (SO_REUSEPORT); one per core")] = 1,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            envvar="FORWARDED_ALLOW_IPS",
            help="proxies whose X-Forwarded-For is trusted: addresses, CIDRs or *",
        ),
    ] = "127.0.0.1",
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Serve GET /o/{token}.gif alone, fast: route /o/ here from the reverse proxy."""
    import logging

    from newsletter.core.config import require_secret_key
    from newsletter.tracking.pixelprocs import serve

    require_secret_key("pixel server")

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    serve(host, port, workers=workers, forwarded_allow_ips=forwarded_allow_ips)


@commands.command("ingest")
def ingest_cmd(
    once: Annotated[bool, typer.Option(help="drain what is there, then exit")] = False,
) -> None:
    """Consume the event stream from Redis into the database."""
    from newsletter.core.config import require_secret_key
    from newsletter.tracking.ingester import consume

    require_secret_key("ingest")
    if not once:
        from newsletter.core.redis import redis_client
        from newsletter.core.telemetry import database_ready, serve_process

        serve_process("ingester", 2, lambda: database_ready() and bool(redis_client().ping()))
    n = consume(max_batches=50 if once else None, block_ms=200 if once else 1000)
    console.print(f"ingested {n} events")
