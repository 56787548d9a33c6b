"""What every command-line sub-app prints with: the consoles, ``--json``, the error line.

A leaf module: it imports no command module, so each domain's sub-app (and
``demo``) can use it without reaching back into ``newsletter.cli``.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["JsonOpt", "console", "emit", "err", "fail", "print_counts", "print_stats"]

console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def fail(exc: Exception) -> None:
    """Print the one-line error for EXC (see :mod:`newsletter.clierrors`) and exit with its code."""
    from .clierrors import describe

    code, line = describe(exc)
    sys.stderr.write(f"error: {line}\n")  # one line, never wrapped to the terminal width
    raise typer.Exit(code)


def emit(data: Any, as_json: bool) -> bool:
    """With ``--json``, write DATA as JSON and return True (the caller then prints nothing else)."""
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    return as_json


def print_counts(title: str, data: dict[str, Any], keys: tuple[str, ...]) -> None:
    """One row of figures under ``title``: a right-aligned column for each key of DATA."""
    t = Table(title=title)
    for k in keys:
        t.add_column(k, justify="right")
    t.add_row(*(str(data[k]) for k in keys))
    console.print(t)


def print_stats(data: dict[str, Any], out: Console | None = None) -> None:
    out = out or console
    from .tracking.spark import sparkline

    t = Table(
        title=f"第{data['issue']}期 {data['title']} · send {data['send_id']} ({data['state']})"
    )
    t.add_column("metric / 指标")
    t.add_column("value / 数值", justify="right")
    rows: list[tuple[str, object]] = [
        ("planned / 计划", data["planned"]),
        ("delivered / 已送达", data["delivered"]),
        ("bounced / 退信", data["deliveries_bounced"]),
        ("failed / 失败", data["deliveries_failed"]),
        ("skipped / 跳过", data["deliveries_skipped"]),
        ("unique opens (human) / 独立打开", data["opens_unique"]),
        ("open rate / 打开率", f"{data['open_rate']:.1%}"),
        ("machine opens / 机器打开", data["opens_total_machine"]),
        ("unique clicks / 独立点击", data["clicks_unique"]),
        ("click rate / 点击率", f"{data['click_rate']:.1%}"),
        ("machine clicks / 机器点击", data["clicks_machine"]),
        ("web archive views / 网页浏览", data.get("archive_views", 0)),
        ("at risk of a duplicate / 可能重复", data.get("at_risk", 0)),
    ]
    wx = data.get("wechat") or {}
    rows += [  # the same three WeChat figures as the console and the CSV (wechat/stats.py)
        ("WeChat reads / 公众号阅读次数", wx.get("reads", 0)),
        ("WeChat readers / 公众号阅读人数", wx.get("readers", 0)),
        ("WeChat shares / 公众号分享次数", wx.get("shares", 0)),
    ]
    rows += [(f"sent via relay {k} / 经 {k} 送达", v) for k, v in data.get("relays", {}).items()]
    for k, v in rows:
        t.add_row(k, str(v))
    out.print(t)
    series = [v for _h, v in data["opens_by_hour"]]
    if series:
        out.print(f"opens by hour / 每小时打开: {sparkline(series)}")
