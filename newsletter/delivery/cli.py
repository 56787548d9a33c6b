"""``newsletter send …``: create, test, start, pause, resume, cancel, subject tests, status.

The bounce intake and ``doctor`` are ``bounces_cli``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from newsletter.core.errors import NewsletterError
from newsletter.core.terminal import JsonOpt, console, emit, err, error_line, fail, print_counts

__all__ = ["send_app"]

send_app = typer.Typer(
    help="Sends: create, start, pause, resume, cancel, status", no_args_is_help=True
)


@send_app.command("create")
def send_create(
    issue: Annotated[str, typer.Argument(help="issue id, or #number")],
    list_name: Annotated[str, typer.Option("--list")],
    variant: Annotated[str, typer.Option(help="preference, zh-Hans or zh-Hant")] = "preference",
    segment: Annotated[str | None, typer.Option(help="saved segment narrowing the list")] = None,
    resend: Annotated[
        str | None,
        typer.Option(
            "--resend",
            metavar="REASON",
            help="send again to readers who already received this issue (audited reason)",
        ),
    ] = None,
    by: str = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Create a draft email send of ISSUE to a list (optionally narrowed by a segment).

    Readers who already received the issue (or are receiving it from another
    send) are skipped when the send is planned, unless --resend gives a reason.
    """
    from sqlalchemy import select

    from newsletter.audience.service import get_list
    from newsletter.core.audit import audit
    from newsletter.core.db import session_scope
    from newsletter.delivery.sends import other_sends
    from newsletter.issues.store import get_issue, lock_issue
    from newsletter.models import Segment, Send

    try:
        with session_scope() as s:
            iss = lock_issue(s, get_issue(s, issue))
            ml = get_list(s, list_name)
            seg_id = None
            if segment:
                seg_id = s.scalar(select(Segment.id).where(Segment.name == segment))
                if seg_id is None:
                    raise NewsletterError(f"segment {segment!r} does not exist")
            send = Send(
                publication_id=iss.publication_id,
                issue_id=iss.id,
                list_id=ml.id,
                segment_id=seg_id,
                channel="email",
                variant_rule=variant,
                state="draft",
                created_by=by,
            )
            if resend is not None:
                reason = " ".join(resend.split())
                if not reason:
                    raise NewsletterError("--resend needs a reason / 重发须写明原因")
                send.resend_reason = reason[:500]
            s.add(send)
            s.flush()
            others = other_sends(s, send)
            if resend is not None:
                audit(
                    s,
                    by,
                    "send.resend",
                    f"send:{send.id}",
                    issue=iss.number,
                    reason=send.resend_reason,
                    others=[i for i, _ in others],
                )
            out: dict[str, Any] = {
                "send_id": send.id,
                "issue": iss.number,
                "list": ml.name,
                "state": send.state,
                "other_sends": [{"id": i, "state": st} for i, st in others],
                "resend": send.resend_reason,
            }
    except NewsletterError as exc:
        fail(exc)
    if not emit(out, as_json):
        console.print(f"send {out['send_id']} created (draft)")
        if out["other_sends"] and not resend:
            listed = ", ".join(f"{o['id']} ({o['state']})" for o in out["other_sends"])
            console.print(
                f"[yellow]issue #{out['issue']} also has send(s) {listed}: readers who "
                "received it are skipped; --resend REASON sends to them again / "
                "已收到本期的读者将被跳过[/]"
            )


@send_app.command("list")
def send_list(as_json: JsonOpt = False) -> None:
    """List sends with their state and progress."""
    from sqlalchemy import func, select

    from newsletter.core.db import session_scope
    from newsletter.models import Delivery, Issue, Send

    with session_scope() as s:
        sent = dict(
            s.execute(
                select(Delivery.send_id, func.count())
                .where(Delivery.state == "sent")
                .group_by(Delivery.send_id)
            ).all()
        )
        rows = [
            {
                "id": sd.id,
                "issue": num,
                "channel": sd.channel,
                "state": sd.state,
                "slot": sd.slot,
                "planned": sd.planned_count,
                "sent": sent.get(sd.id, 0),
            }
            for sd, num in s.execute(
                select(Send, Issue.number)
                .join(Issue)
                .where(Send.kind == "issue")
                .order_by(Send.id.desc())
            )
        ]
    if emit(rows, as_json):
        return
    t = Table("id", "issue", "channel", "state", "slot", "sent/planned")
    for r in rows:
        t.add_row(
            str(r["id"]),
            str(r["issue"]),
            str(r["channel"]),
            str(r["state"]),
            str(r["slot"] or ""),
            f"{r['sent']}/{r['planned']}",
        )
    console.print(t)


@send_app.command("test")
def send_test(
    issue: Annotated[str, typer.Argument(help="issue id, or #number")],
    to: Annotated[list[str], typer.Option("--to", help="recipient (repeatable)")],
    variant: Annotated[str, typer.Option(help="zh-Hans, zh-Hant or both")] = "zh-Hans",
    as_json: JsonOpt = False,
) -> None:
    """Send the real rendered message to test addresses, outside the ledger and the stats."""
    from newsletter.delivery.testsend import send_test as do_test

    try:
        results = do_test(issue, to, variant)
    except NewsletterError as exc:
        fail(exc)
    if not emit(results, as_json):
        for r in results:
            console.print(f"{r['variant']} → {r['to']}: {r['state']} {r['reply']}")
    if any(r["state"] != "sent" for r in results):
        raise typer.Exit(1)


@send_app.command("start")
def send_start(
    send_id: int,
    wait: Annotated[bool, typer.Option(help="embedded mode: run to the end here")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Start a send now: plan deliveries, then send (in-process, or through Celery workers)."""
    from newsletter.core.config import get_settings
    from newsletter.delivery.run import channel_of, start, start_channel

    try:
        if get_settings().embedded:
            state = start_channel(send_id) if wait else "sending"
        else:
            from newsletter.core.dispatch import dispatcher

            d = dispatcher()
            d.check()  # a broker that is down changes nothing
            if channel_of(send_id) == "email":
                start(send_id)  # plan here: a send that cannot start fails now, loudly
            d.start_send(send_id)
            state = "queued to workers"
    except NewsletterError as exc:
        fail(exc)
    _show_status(send_id, as_json, note=state)
    _exit_if_failed(send_id)


def _exit_if_failed(send_id: int) -> None:
    from newsletter.core.db import session_scope
    from newsletter.models import Send

    with session_scope() as s:
        send = s.get(Send, send_id)
        failed = send is not None and send.state == "failed"
        reason = send.error if send is not None else None
    if failed:
        err.print(f"[bold red]send {send_id} failed / 发送失败:[/] {reason}")
        raise typer.Exit(2)


def _control(send_id: int, action: str, as_json: bool) -> None:
    from newsletter.core.db import session_scope
    from newsletter.delivery.sends import transition

    try:
        with session_scope() as s:
            changed = transition(s, send_id, action)
    except NewsletterError as exc:
        fail(exc)
    if action == "resume":
        from newsletter.core.config import get_settings

        if not get_settings().embedded:
            from newsletter.core.dispatch import dispatcher

            try:
                dispatcher().run_batches(send_id, get_settings().send_parallelism)
            except NewsletterError as exc:
                fail(exc)
    _show_status(send_id, as_json, note=f"{action}{'' if changed else ' (no change)'}")


@send_app.command("pause")
def send_pause(send_id: int, as_json: JsonOpt = False) -> None:
    """Pause a send; workers stop within seconds."""
    _control(send_id, "pause", as_json)


@send_app.command("resume")
def send_resume(send_id: int, as_json: JsonOpt = False) -> None:
    """Resume a paused send."""
    _control(send_id, "resume", as_json)


@send_app.command("cancel")
def send_cancel(send_id: int, as_json: JsonOpt = False) -> None:
    """Cancel a send; deliveries not yet sent stay unsent."""
    _control(send_id, "cancel", as_json)


@send_app.command("subjects")
def send_subjects(
    send_id: int,
    subjects: Annotated[list[str], typer.Argument(help="2–4 subjects; the first is the default")],
    share: Annotated[int, typer.Option(help="Test share, percent of the audience")] = 20,
    wait: Annotated[int, typer.Option(help="Minutes before the winner is decided")] = 240,
    metric: Annotated[str, typer.Option(help="opens or clicks (human only)")] = "opens",
    as_json: JsonOpt = False,
) -> None:
    """Make a draft send a subject test (winner by human opens or clicks)."""
    from newsletter.core.db import session_scope
    from newsletter.delivery.subjects import configure

    try:
        with session_scope() as s:
            configure(s, send_id, subjects, share=share, wait_seconds=wait * 60, metric=metric)
    except NewsletterError as exc:
        fail(exc)
    data = {
        "send": send_id,
        "subjects": subjects,
        "share": share,
        "wait_minutes": wait,
        "metric": metric,
    }
    if not emit(data, as_json):
        typer.echo(
            f"send {send_id}: subject test of {len(subjects)} subjects, {share}% test "
            f"share, decided after {wait} min by human {metric}"
        )


@send_app.command("decide")
def send_decide(send_id: int, now: bool = False, as_json: JsonOpt = False) -> None:
    """Decide a subject test (--now: before its time) and release the remainder."""
    from newsletter.core.db import session_scope
    from newsletter.delivery.subjects import decide

    try:
        with session_scope() as s:
            report = decide(s, send_id, force=now)
    except NewsletterError as exc:
        fail(exc)
    if report is None:
        error_line(
            f"发送 {send_id} 没有到期的主题测试 / send {send_id} has no subject test due yet"
        )
        raise typer.Exit(1)
    if not emit(report, as_json):
        for v in report["variants"]:
            typer.echo(
                f"  [{v['index'] + 1}] {v['subject']}: sent {v['sent']}, human opens "
                f"{v['opens_human']} ({v['open_rate']:.1%}), machine opens "
                f"{v['opens_machine']}, human clicks {v['clicks_human']}"
            )
        typer.echo(f"winner: [{report['winner'] + 1}] (p = {report['p_value']}); {report['note']}")
    from newsletter.core.config import get_settings

    if get_settings().embedded:
        from newsletter.delivery.run import drive_inline

        drive_inline(send_id)  # the remainder goes out now, in this process
    else:
        from newsletter.core.dispatch import dispatcher

        dispatcher().run_batches(send_id, get_settings().send_parallelism)


@send_app.command("status")
def send_status(
    send_id: int,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="live progress bar until done")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a send's state and delivery counts (--watch: a live progress bar with the rate)."""
    if watch and not as_json:
        _watch(send_id)
    _show_status(send_id, as_json)


def _watch(send_id: int, every: float = 1.0) -> None:
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from newsletter.core.db import session_scope
    from newsletter.delivery.sends import state_counts
    from newsletter.models import Send

    terminal = ("finished", "cancelled", "failed", "paused", "empty")
    with Progress(
        TextColumn("[bold]send {task.fields[send]}[/] {task.fields[state]}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TextColumn("{task.fields[rate]:,.0f} msg/s"),
        TextColumn(
            "bounced {task.fields[bounced]} · deferred {task.fields[deferred]} "
            "· skipped {task.fields[skipped]}"
        ),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(
            "send", total=1, send=send_id, state="", rate=0.0, bounced=0, deferred=0, skipped=0
        )
        last: tuple[float, int] | None = None
        while True:
            with session_scope() as s:
                send = s.get(Send, send_id)
                if send is None:
                    fail(NewsletterError(f"send {send_id} does not exist"))
                    return
                state, counts = send.state, state_counts(s, send_id)
            total = max(sum(counts.values()), 1)
            done = counts["sent"] + counts["bounced"] + counts["failed"] + counts["skipped"]
            now = time.monotonic()
            rate = (done - last[1]) / (now - last[0]) if last and now > last[0] else 0.0
            last = (now, done)
            progress.update(
                task,
                total=total,
                completed=done,
                state=state,
                rate=rate,
                bounced=counts["bounced"],
                deferred=counts["deferred"],
                skipped=counts["skipped"],
            )
            if state in terminal or (state == "sending" and done >= total):
                break
            time.sleep(every)


def _show_status(send_id: int, as_json: bool, note: str | None = None) -> None:
    from sqlalchemy import func, select

    from newsletter.core.db import session_scope
    from newsletter.delivery.relays import relay_counts
    from newsletter.delivery.relays_cli import print_relay_counts
    from newsletter.delivery.sends import state_counts
    from newsletter.models import Delivery, Send

    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None:
            fail(NewsletterError(f"send {send_id} does not exist"))
            return
        channel = send.channel
        counts = state_counts(s, send_id)
    if channel == "wechat":
        from newsletter.wechat.publisher import status as wechat_status

        data_wx = wechat_status(send_id)
        if note:
            data_wx["note"] = note
        if not emit(data_wx, as_json):
            console.print(data_wx)
        return
    with session_scope() as s:
        send = s.get(Send, send_id)
        assert send is not None
        at_risk = s.scalar(
            select(func.count()).where(Delivery.send_id == send_id, Delivery.at_risk.is_(True))
        )
        data = {
            "send_id": send_id,
            "state": send.state,
            "planned": send.planned_count,
            "excluded": send.excluded_count,
            "already_received": send.already_received,
            "at_risk": int(at_risk or 0),
            "relays": relay_counts(s, send_id),
            "resend_reason": send.resend_reason,
            "error": send.error,
            **counts,
        }
    if note:
        data["note"] = note
    if emit(data, as_json):
        return
    print_counts(
        f"send {send_id}: {data['state']}",
        data,
        ("planned", "sent", "queued", "sending", "deferred", "bounced", "failed", "skipped"),
    )
    print_relay_counts(data["relays"])  # type: ignore[arg-type]
    if data["already_received"]:
        console.print(
            f"skipped {data['already_received']} reader(s) who already received this issue "
            "from another send / 已收到本期的读者已跳过"
        )
    if data["resend_reason"]:
        console.print(f"resend / 重发原因: {data['resend_reason']}")
    if data["at_risk"]:
        console.print(
            f"[yellow]at risk / 可能重复: {data['at_risk']}[/] (re-sent after a crash with the "
            "same Message-ID, so receivers can drop the copy)"
        )
    if data["error"]:
        console.print(f"[red]{data['error']}[/]")
