"""The reading commands: one send's statistics, exports and trends.

tracking show SEND [--json]          table, sparkline, per variant / domain / link
tracking export SEND --kind recipients|links [--out FILE]   CSV, streamed
tracking trend [--last N] [--json]   the last N sends side by side
issue lint FILE [--json]             every check of every channel (content, budgets, WeChat)
stats SEND [--json]                  the summary table (mounted at the root)

They join the ``tracking`` group of :mod:`newsletter.tracking.cli` and the ``issue``
group of :mod:`newsletter.issues.cli`; the root command line mounts those groups from
here (with these commands added) and this module's ``commands``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from newsletter.core.errors import NewsletterError
from newsletter.core.terminal import JsonOpt, console, emit, err, fail
from newsletter.issues.cli import _ctx_for_file, issue_app
from newsletter.tracking.cli import stats_app

__all__ = ["commands", "issue_app", "print_stats", "reader_text", "state_words", "stats_app"]

commands = typer.Typer()  # top-level commands (stats): mounted without a name


def _fail(exc: Exception) -> None:
    from newsletter.core.terminal import error_line

    error_line(str(exc))
    raise typer.Exit(1)


def reader_text(text: str) -> str:
    """A label written ``English / 中文`` in the reader's language (Chinese first when both)."""
    from newsletter.core.catalogue import for_reader, reader_language

    return for_reader(text, reader_language())


def _pct(v: float) -> str:
    return f"{v:.1%}"


def state_words(state: str) -> str:
    """A send's state in the reader's language (``send.state.*`` in the catalogue)."""
    from newsletter.core.catalogue import message, reader_language

    try:
        return message(f"send.state.{state}").for_reader(reader_language())
    except KeyError:  # a state this version does not name
        return state


def print_stats(data: dict[str, Any], out: Console | None = None) -> None:
    out = out or console
    from newsletter.tracking.spark import sparkline

    t = Table(
        title=f"第{data['issue']}期 {data['title']} · "
        + reader_text(
            f"发送 {data['send_id']}（{data['state']}） / send {data['send_id']} ({data['state']})"
        )
    )
    t.add_column(reader_text("metric / 指标"))
    t.add_column(reader_text("value / 数值"), justify="right")
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
        t.add_row(reader_text(k), str(v))
    out.print(t)
    series = [v for _h, v in data["opens_by_hour"]]
    if series:
        out.print(f"{reader_text('opens by hour / 每小时打开')}: {sparkline(series)}")


@stats_app.command("show")
def show(send_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One send: totals, hourly sparkline, per variant, per domain group, per link."""
    from newsletter.core.db import session_scope
    from newsletter.core.errors import NewsletterError
    from newsletter.reports.stats import send_stats, sparkline

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
        f"{reader_text('machine opens by hour / 机器打开')}: "
        f"{sparkline([h['opens_machine'] for h in data['hourly']])}"
    )
    for title, key, label, head in (
        ("per variant / 按版本", "by_variant", "variant", "版本 / variant"),
        ("per domain group / 按邮箱服务商", "by_domain", "group", "邮箱服务商 / group"),
    ):
        t = Table(title=reader_text(title))
        for c in (head, "已送达 / delivered", "独立打开 / unique opens", "打开率 / open rate",
                  "机器打开 / machine opens", "独立点击 / unique clicks", "点击率 / CTR",
                  "退订 / unsub", "退信 / bounces", "投诉 / complaints"):  # fmt: skip
            t.add_column(reader_text(c), justify="left" if c == head else "right")
        for r in data[key]:
            t.add_row(r[label], str(r["delivered"]), str(r["opens_unique"]), _pct(r["open_rate"]),
                      str(r["opens_total_machine"]), str(r["clicks_unique"]),
                      _pct(r["click_rate"]), str(r["unsubscribes"]), str(r["bounces"]),
                      str(r["complaints"]))  # fmt: skip
        console.print(t)
    t = Table(title=reader_text("links / 链接"))
    for c in ("#", "链接 / url", "点击 / clicks", "独立点击 / unique", "点击率 / CTR",
              "机器点击 / machine"):  # fmt: skip
        t.add_column(reader_text(c), justify="left" if c == "链接 / url" else "right")
    for r in data["links"]:
        t.add_row(str(r["position"]), str(r["url"]), str(r["clicks"]), str(r["unique"]),
                  _pct(r["click_rate"]), str(r["clicks_machine"]))  # fmt: skip
    console.print(t)
    if data.get("wechat"):
        w = data["wechat"]
        console.print(reader_text(
            f"公众号：阅读 {w['read_count']}（{w['read_user']} 人），分享 {w['share_count']}，"
            f"收藏 {w['fav_count']} / WeChat: reads {w['read_count']} (users {w['read_user']}), "
            f"shares {w['share_count']}, favourites {w['fav_count']}"))  # fmt: skip


@stats_app.command("export")
def export(
    send_id: int,
    kind: Annotated[str, typer.Option(help="recipients | links")] = "recipients",
    out: Annotated[Path | None, typer.Option(help="file (default: stdout)")] = None,
) -> None:
    """CSV export, streamed: per-recipient activity or per-link clicks."""
    from newsletter.core.db import session_scope
    from newsletter.core.errors import NewsletterError
    from newsletter.reports.stats import export_links_csv, export_recipients_csv

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
    from newsletter.core.db import session_scope
    from newsletter.reports.stats import sparkline, trend

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


@commands.command("stats")
def stats(send_id: int, as_json: JsonOpt = False) -> None:
    """Delivery, open and click statistics of a send (from rollups)."""
    from newsletter.core.db import session_scope
    from newsletter.reports.stats import send_stats

    try:
        with session_scope() as s:
            data = send_stats(s, send_id)
    except NewsletterError as exc:
        fail(exc)
    if emit(data, as_json):
        return
    print_stats(data)


@issue_app.command("lint")
def issue_lint(file: Path, as_json: JsonOpt = False) -> None:
    """Check structure, numbering, metadata, links, images and every channel's size budget.

    Exits 1 when there are errors.
    """
    from newsletter.content.decode import decode_source
    from newsletter.core.errors import IssueFormatError
    from newsletter.reports.lint import full_lint

    try:
        text, warnings = decode_source(file.read_bytes(), path=str(file))
    except (IssueFormatError, OSError) as exc:
        fail(exc)
    messages, budgets = full_lint(text, str(file), _ctx_for_file)
    infos = [m for lvl, _c, m in budgets if lvl == "info"]
    data = [
        {"level": m.level, "line": m.line, "code": m.code, "message": m.message} for m in messages
    ]
    errors = sum(1 for m in messages if m.level == "error")
    if not emit(
        {
            "file": str(file),
            "messages": data,
            "info": infos,
            "errors": errors,
            "decode_warnings": warnings,
        },
        as_json,
    ):
        for w in warnings:
            err.print(f"[yellow]warning:[/] {w}")
        for m in messages:
            color = "red" if m.level == "error" else "yellow"
            where = f"{file}:{m.line}" if m.line else str(file)
            console.print(f"[{color}]{m.level}[/] {where} [{m.code}] {m.message}")
        for i in infos:
            console.print(f"[dim]info[/] {i}")
        console.print(f"{errors} error(s), {len(messages) - errors} warning(s)")
    if errors:
        raise typer.Exit(1)
