"""``newsletter wechat …`` commands (mounted by newsletter.cli.main as ``wechat``).

Exit status: 0 on success, 2 on an error or a failed WeChat channel, so that
scripts and cron can tell.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from newsletter.core.catalogue import error_prefix, for_reader, reader_language
from newsletter.core.errors import NewsletterError
from newsletter.core.failures import one_line
from newsletter.core.terminal import emit as _emit
from newsletter.core.terminal import fail

__all__ = ["wechat_app"]

wechat_app = typer.Typer(
    help="WeChat Official Account / 公众号: check, preview, publish, stats", no_args_is_help=True
)
console = Console()
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
IssueArg = Annotated[str, typer.Argument(help="issue id, or #number")]


#: Exit status of a run that did not reach its goal but may simply be run again
#: (sysexits.h EX_TEMPFAIL); errors exit 2.
TRY_AGAIN_LATER = 75


def _fail(exc: Exception) -> None:
    """One line (never wrapped, never read as markup), exit 2 for any error raised on purpose."""
    fail(exc)


def _show(out: dict[str, Any], as_json: bool) -> None:
    if not _emit(out, as_json):
        console.print(
            f"send {out['send_id']} · wechat · mode {out.get('mode')} · [bold]{out['state']}[/]"
        )
        d, p, m = out.get("draft", {}), out.get("publish", {}), out.get("mass_send", {})
        if d.get("media_id"):
            console.print(f"  draft     {d['media_id']} ({d['articles']} articles)")
        if p.get("publish_id") or p.get("article_urls"):
            # a publish recovered through batchget has its articles before its publish_id
            # (WeChat's PUBLISHJOBFINISH event brings it)
            pid = p.get("publish_id") or "(publish_id 待回调补全 / awaiting the callback)"
            console.print(f"  publish   {pid} status {p['status']} {p['status_text']}")
            for url in p.get("article_urls", []):
                console.print(f"            {url}", soft_wrap=True)
        if m.get("msg_id"):
            console.print(f"  mass send msg_id {m['msg_id']} {m.get('status') or ''}")
        for a in out.get("failed_articles", []):
            console.print(f"  [red]failed article #{a['index']}[/] {a['title']}")
        if out.get("error"):
            # once, one line (never wrapped to the terminal, never read as markup)
            lang = reader_language()
            line = for_reader(one_line(out["error"]), lang)
            sys.stderr.write(f"{error_prefix(lang)}{line}\n")
    if out.get("state") == "failed":
        raise typer.Exit(2)


@wechat_app.command("check")
def check(as_json: JsonOpt = False) -> None:
    """Check the credentials, this server's IP allow-listing and the mass-send quota."""
    from newsletter.wechat.client import WeChatClient
    from newsletter.wechat.errors import WeChatError

    try:
        with WeChatClient() as client:
            client.token()
            out: dict[str, Any] = {
                "appid": client.appid,
                "credentials": "ok",
                "ip_allowed": True,
                "base_url": client.settings.base_url,
            }
            try:  # a real call: a cached token alone proves nothing about the IP
                out["mass_send_quota"] = client.quota("/cgi-bin/message/mass/sendall")
            except WeChatError as exc:
                if exc.errcode != 48001:
                    raise
                out["mass_send_quota"] = {"error": str(exc)}
    except NewsletterError as exc:
        _fail(exc)
    if not _emit(out, as_json):
        q = out["mass_send_quota"]
        console.print(
            f"WeChat {out['appid']}: credentials ok, IP allowed; "
            f"mass-send quota {q.get('remain', '?')}/{q.get('daily_limit', '?')}"
        )


@wechat_app.command("preview")
def preview(
    issue: IssueArg,
    openid: Annotated[str, typer.Option("--openid", help="follower's OpenID")],
    as_json: JsonOpt = False,
) -> None:
    """Create the issue's draft (or reuse it) and send it to one follower (mass/preview)."""
    from newsletter.wechat.publisher import preview_issue

    try:
        out = preview_issue(issue, openid)
    except NewsletterError as exc:
        _fail(exc)
    if not _emit(out, as_json):
        console.print(f"preview of draft {out['preview']['media_id']} sent to {openid}")


@wechat_app.command("publish")
def publish(
    issue: IssueArg,
    retry: Annotated[bool, typer.Option(help="retry a failed channel")] = False,
    take_over: Annotated[
        bool,
        typer.Option(
            "--take-over",
            help="break the lease of a run that is gone (kill -9, lost host) and resume",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Publish and/or mass-send ISSUE (resumes an interrupted run; never pushes twice).

    Only an approved issue is published, its sealed version. Exit 0: done; 2: an error
    or a failed channel (a run that finds another run's lease exits 2 and names the
    holder and the expiry); 75: stopped short but resumable, run it again later.
    """
    from newsletter.wechat.publisher import publish_issue

    try:
        out = publish_issue(issue, retry=retry, take_over=take_over)
    except NewsletterError as exc:
        _fail(exc)
    _show(out, as_json)  # a failed channel exits 2
    if out.get("state") != "done":
        # Stopped short but resumable (WeChat busy, -1 after every retry, a lost submit
        # answer, still publishing): nothing is lost, run it again later.
        raise typer.Exit(TRY_AGAIN_LATER)


@wechat_app.command("status")
def status_cmd(issue: IssueArg, as_json: JsonOpt = False) -> None:
    """Show every step of ISSUE's WeChat channel."""
    from newsletter.wechat.publisher import status, wechat_send_for

    try:
        out = status(wechat_send_for(issue, create=False))
    except NewsletterError as exc:
        _fail(exc)
    if out.get("state") == "not started":
        if not _emit(out, as_json):
            console.print(f"send {out['send_id']} · wechat · not started")
        return
    _show(out, as_json)


@wechat_app.command("stats-sync")
def stats_sync(
    days: Annotated[int, typer.Option(help="days back to sync")] = 7, as_json: JsonOpt = False
) -> None:
    """Pull WeChat read statistics (datacube) for the last DAYS days of each issue."""
    from newsletter.wechat.stats import sync_stats

    try:
        out = sync_stats(days=days)
    except NewsletterError as exc:
        _fail(exc)
    if not _emit(out, as_json):
        console.print(
            f"{out['rows']} article-day rows from {out['calls']} calls ({out['dates']} dates)"
        )
