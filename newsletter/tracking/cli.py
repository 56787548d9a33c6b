"""``newsletter stats …``: the tracking sub-commands (a Typer sub-app, mounted by newsletter.cli).

stats show SEND [--json]             table, sparkline, per variant / domain / link
stats export SEND --kind recipients|links [--out FILE]   CSV, streamed
stats trend [--last N] [--json]      the last N sends side by side
stats retention [--dry-run]          purge raw events past each publication's retention
stats rebuild SEND                   recompute a send's rollups from its raw events
stats replay-spool                   ingest events spooled while Redis and the DB were down
tracking serve-pixel [--host --port --workers]   the lean open-pixel server (docs/operations.md)

Mounted without a name (``commands``): ``newsletter stats SEND`` (the summary
table) and ``newsletter ingest`` (consume the event stream).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..cliout import JsonOpt, emit, fail, print_stats
from ..errors import NewsletterError

__all__ = ["commands", "stats_app"]

stats_app = typer.Typer(help="Open/click statistics / 阅读统计", no_args_is_help=True)
commands = typer.Typer()  # top-level commands (stats, ingest): mounted without a name
console = Console()


def _fail(exc: Exception) -> None:
    console.print(f"[red]{exc}[/red]")
    raise typer.Exit(1)


def _pct(v: float) -> str:
    return f"{v:.1%}"


@stats_app.command("show")
def show(send_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One send: totals, hourly sparkline, per variant, per domain group, per link."""
    from ..db import session_scope
    from ..errors import NewsletterError
    from .stats import send_stats, sparkline

    try:
        with session_scope() as s:
            data = send_stats(s, send_id)
    except NewsletterError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        return
    print_stats(data, console)
    console.print(
        f"machine opens by hour / 机器打开: {sparkline([h['opens_machine'] for h in data['hourly']])}"
    )
    for title, key, label in (("per variant / 按版本", "by_variant", "variant"),
                              ("per domain group / 按邮箱服务商", "by_domain", "group")):  # fmt: skip
        t = Table(title=title)
        for c in (label, "delivered", "unique opens", "open rate", "machine opens",
                  "unique clicks", "CTR", "unsub", "bounces", "complaints"):  # fmt: skip
            t.add_column(c, justify="left" if c == label else "right")
        for r in data[key]:
            t.add_row(r[label], str(r["delivered"]), str(r["opens_unique"]), _pct(r["open_rate"]),
                      str(r["opens_total_machine"]), str(r["clicks_unique"]),
                      _pct(r["click_rate"]), str(r["unsubscribes"]), str(r["bounces"]),
                      str(r["complaints"]))  # fmt: skip
        console.print(t)
    t = Table(title="links / 链接")
    for c in ("#", "url", "clicks", "unique", "CTR", "machine"):
        t.add_column(c, justify="left" if c == "url" else "right")
    for r in data["links"]:
        t.add_row(str(r["position"]), str(r["url"]), str(r["clicks"]), str(r["unique"]),
                  _pct(r["click_rate"]), str(r["clicks_machine"]))  # fmt: skip
    console.print(t)
    if data.get("wechat"):
        w = data["wechat"]
        console.print(f"WeChat / 微信: reads {w['read_count']} (users {w['read_user']}), "
                      f"shares {w['share_count']}, favourites {w['fav_count']}")  # fmt: skip


@stats_app.command("export")
def export(
    send_id: int,
    kind: Annotated[str, typer.Option(help="recipients | links")] = "recipients",
    out: Annotated[Path | None, typer.Option(help="file (default: stdout)")] = None,
) -> None:
    """CSV export, streamed: per-recipient activity or per-link clicks."""
    from ..db import session_scope
    from ..errors import NewsletterError
    from .stats import export_links_csv, export_recipients_csv

    if kind not in ("recipients", "links"):
        _fail(ValueError("--kind must be recipients or links"))
    fh: Any = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        if kind == "recipients":
            for line in export_recipients_csv(send_id):
                fh.write(line)
        else:
            with session_scope() as s:
                for line in export_links_csv(s, send_id):
                    fh.write(line)
    except NewsletterError as exc:
        _fail(exc)
    finally:
        if out:
            fh.close()


@stats_app.command("trend")
def trend_cmd(
    last: Annotated[int, typer.Option(help="how many sends")] = 8,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Key figures of the last N sends, oldest first."""
    from ..db import session_scope
    from .stats import sparkline, trend

    with session_scope() as s:
        rows = trend(s, last)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    t = Table(title=f"last {len(rows)} sends / 最近发送")
    for c in ("send", "issue", "delivered", "open rate", "CTR", "machine opens", "unsub",
              "complaints", "WeChat reads"):  # fmt: skip
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(str(r["send_id"]), str(r["issue"]), str(r["delivered"]), _pct(r["open_rate"]),
                  _pct(r["click_rate"]), str(r["opens_total_machine"]), str(r["unsubscribes"]),
                  str(r["complaints"]), str(r["wechat_reads"] or "—"))  # fmt: skip
    console.print(t)
    console.print(f"open rate / 打开率: {sparkline([int(r['open_rate'] * 1000) for r in rows])}")


@stats_app.command("retention")
def retention(dry_run: Annotated[bool, typer.Option("--dry-run")] = False) -> None:
    """Delete raw events older than each publication's retention (rollups stay)."""
    from ..db import session_scope
    from .stats import purge

    with session_scope() as s:
        result = purge(s)
        if dry_run:
            s.rollback()
    for slug, n in result.items():
        console.print(f"{slug}: {n} events {'would be ' if dry_run else ''}purged")


@stats_app.command("rebuild")
def rebuild_cmd(send_id: int) -> None:
    """Recompute a send's rollups from its raw events (exact while they are all retained)."""
    from ..db import session_scope
    from .events import rebuild

    with session_scope() as s:
        console.print(rebuild(s, send_id))


@stats_app.command("replay-spool")
def replay_spool_cmd() -> None:
    """Ingest events that web processes spooled while Redis and the database were down."""
    from .events import replay_spool

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

    from ..config import require_secret_key
    from ..web.pixelserver import serve

    require_secret_key("pixel server")

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
    )
    serve(host, port, workers=workers, forwarded_allow_ips=forwarded_allow_ips)


@commands.command("stats")
def stats(send_id: int, as_json: JsonOpt = False) -> None:
    """Delivery, open and click statistics of a send (from rollups)."""
    from ..db import session_scope
    from .stats import send_stats

    try:
        with session_scope() as s:
            data = send_stats(s, send_id)
    except NewsletterError as exc:
        fail(exc)
    if emit(data, as_json):
        return
    print_stats(data)


@commands.command("ingest")
def ingest_cmd(
    once: Annotated[bool, typer.Option(help="drain what is there, then exit")] = False,
) -> None:
    """Consume the event stream from Redis into the database."""
    from ..config import require_secret_key
    from .ingester import consume

    require_secret_key("ingest")
    if not once:
        from ..redisconn import redis_client
        from ..telemetry import database_ready, serve_process

        serve_process("ingester", 2, lambda: database_ready() and bool(redis_client().ping()))
    n = consume(max_batches=50 if once else None, block_ms=200 if once else 1000)
    console.print(f"ingested {n} events")
