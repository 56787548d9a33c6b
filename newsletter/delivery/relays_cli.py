"""`newsletter relays …` and `newsletter warmup …`: see relays and warm-up plans.

Passwords are never printed: a relay shows only whether one is set.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["print_relay_counts", "relays_app", "warmup_app"]

relays_app = typer.Typer(
    help="Relays: list them, see which are in service, probe / 发信服务器", no_args_is_help=True
)
warmup_app = typer.Typer(
    help="Warm-up of sending domains: show and set the ramp / 发信域名预热", no_args_is_help=True
)
console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _emit(data: Any, as_json: bool) -> bool:
    if as_json:
        console.print_json(json.dumps(data, ensure_ascii=False, default=str))
    return as_json


@relays_app.command("list")
def relays_list(as_json: JsonOpt = False) -> None:
    """The configured relays (host, port, TLS, user, weight, rate, routes; never passwords)."""
    from newsletter.delivery.relay_config import load_relays

    data = [r.public() for r in load_relays()]
    if _emit(data, as_json):
        return
    t = Table(title="relays / 发信服务器")
    for col in (
        "name",
        "host",
        "port",
        "tls",
        "user",
        "password",
        "weight",
        "rate/s",
        "reserved for",
    ):
        t.add_column(col)
    for r in data:
        reserved = ", ".join([*r["from_domains"], *(f"pub:{p}" for p in r["publications"])])
        t.add_row(
            r["name"], r["host"], str(r["port"]), r["tls"], r["username"] or "-",
            "set" if r["password_set"] else "-", f"{r['weight']:g}",
            f"{r['rate']:g}" if r["rate"] else "unlimited", reserved or "(general)",
        )  # fmt: skip
    console.print(t)


@relays_app.command("status")
def relays_status(
    probe: Annotated[
        bool, typer.Option("--probe", help="probe the relays out of service now")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Which relays are in service; those taken out, since when, their next probe."""
    from newsletter.delivery.relays import probe_due, status

    if probe:
        back = probe_due(force=True)
        if back and not as_json:
            console.print("brought back / 已恢复: " + ", ".join(back))
    data = status()
    if _emit(data, as_json):
        return
    t = Table(title="relay status / 发信服务器状态")
    for col in ("name", "state / 状态", "down since", "next probe", "last error"):
        t.add_column(col)
    for r in data:
        t.add_row(
            r["name"],
            "[green]up / 可用[/]" if r["state"] == "up" else "[red]down / 停用[/]",
            (r["down_since"] or "")[:19],
            (r["next_probe_at"] or "")[:19],
            (r["last_error"] or "")[:80],
        )
    console.print(t)


def print_relay_counts(counts: dict[str, int], out: Console | None = None) -> None:
    """One line: how many deliveries each relay carried (for `send status`)."""
    if counts:
        (out or console).print(
            "carried by relay / 各发信服务器送达: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
        )


@warmup_app.command("show")
def warmup_show(
    domain: Annotated[str | None, typer.Argument(help="sending domain (default: all)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Warm-up plans: the ramp, today's day and allowance, what is used today."""
    from newsletter.core.db import session_scope
    from newsletter.delivery.warmup import allowance, plans

    with session_scope() as s:
        names = [domain.lower()] if domain else sorted(plans(s))
        data = [a for a in (allowance(s, d) for d in names) if a is not None]
    if _emit(data, as_json):
        return
    if not data:
        console.print("no warm-up plan: every domain sends at full volume / 没有预热计划")
        return
    for a in data:
        t = Table(title=f"warm-up / 预热 {a['domain']} (day {a['day'] + 1}, {a['today']})")
        t.add_column("metric / 指标")
        t.add_column("value / 数值", justify="right")
        t.add_row("today's allowance / 今日额度", f"{a['today_allowance']:,}")
        t.add_row("used today / 今日已用", f"{a['used']:,}")
        t.add_row("left today / 今日剩余", f"{a['left']:,}")
        for d, share in sorted(a["shares"].items()):
            t.add_row(f"{d} share / 占比上限", f"{share:.0%} (used {a['by_domain'].get(d, 0):,})")
        t.add_row("schedule / 计划", ", ".join(f"{n:,}" for n in a["schedule"]))
        t.add_row("started / 开始", str(a["start_day"]))
        console.print(t)


def _parse_shares(values: list[str]) -> dict[str, float]:
    from newsletter.core.errors import ConfigError

    out: dict[str, float] = {}
    for v in values:
        dom, sep, share = v.partition("=")
        try:
            out[dom.strip().lower()] = float(share)
        except ValueError:
            sep = ""
        if not sep or not dom.strip():
            raise ConfigError(
                f"--share {v!r}: expected DOMAIN=SHARE, e.g. gmail.com=0.3 "
                "/ 应为 域名=占比，例如 gmail.com=0.3"
            )
    return out


@warmup_app.command("set")
def warmup_set(
    domain: Annotated[str, typer.Argument(help="sending (From) domain, e.g. brief.example.cn")],
    schedule: Annotated[
        str | None, typer.Option(help="messages per day, comma separated: 50,100,200,…")
    ] = None,
    start: Annotated[str | None, typer.Option(help="first day of the ramp, YYYY-MM-DD")] = None,
    share: Annotated[
        list[str] | None, typer.Option(help="recipient domain cap, e.g. gmail.com=0.3 (repeat)")
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="stop warming this domain up")] = False,
) -> None:
    """Set a domain's warm-up ramp (without --schedule: the default one from the settings)."""
    from newsletter.core.db import session_scope
    from newsletter.core.errors import ConfigError
    from newsletter.delivery.warmup import set_plan

    sched: list[int] | None = None
    if schedule is not None:
        try:
            sched = [int(x) for x in schedule.replace(" ", "").split(",") if x]
        except ValueError:
            raise ConfigError(
                "--schedule: whole numbers separated by commas, e.g. 50,100,200 "
                "/ 每日发送量须为逗号分隔的整数"
            ) from None
    with session_scope() as s:
        set_plan(
            s,
            domain,
            schedule=sched,
            shares=_parse_shares(share) if share else None,
            start=start,
            enabled=not off,
        )
    console.print(f"warm-up of {domain} " + ("off / 已关闭预热" if off else "set / 已设置预热计划"))
