"""``newsletter schedule show|set``: a publication's weekly slot."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from newsletter.core.errors import NewsletterError
from newsletter.core.terminal import JsonOpt, console, emit, fail
from newsletter.delivery.cli import send_app

__all__ = ["schedule_app"]

schedule_app = typer.Typer(help="Weekly schedule of a publication", no_args_is_help=True)


@schedule_app.command("show")
def schedule_show(as_json: JsonOpt = False) -> None:
    """Show each publication's weekly slot and the next one."""
    from sqlalchemy import select

    from newsletter.core.db import session_scope
    from newsletter.models import Publication, utcnow
    from newsletter.schedule.slots import next_slot, parse_time, slot_key

    with session_scope() as s:
        rows = []
        for p in s.scalars(select(Publication).order_by(Publication.id)):
            nxt = None
            if p.schedule_weekday and p.schedule_time:
                at = next_slot(
                    p.schedule_weekday, parse_time(p.schedule_time), p.timezone, utcnow()
                )
                nxt = slot_key(at, p.timezone)
            rows.append(
                {
                    "publication": p.slug,
                    "name": p.name,
                    "weekday": p.schedule_weekday,
                    "time": p.schedule_time,
                    "timezone": p.timezone,
                    "next_slot": nxt,
                    "default_list_id": p.default_list_id,
                }
            )
    if emit(rows, as_json):
        return
    t = Table("publication", "name", "weekday", "time", "time zone", "next slot")
    for r in rows:
        t.add_row(
            *(
                str(r[k] or "")
                for k in ("publication", "name", "weekday", "time", "timezone", "next_slot")
            )
        )
    console.print(t)


@schedule_app.command("set")
def schedule_set(
    weekday: Annotated[int, typer.Option(help="1 = Monday … 7 = Sunday")],
    time: Annotated[str, typer.Option(help="local time HH:MM")],
    tz: Annotated[str, typer.Option(help="IANA time zone")] = "Asia/Shanghai",
    publication: Annotated[str | None, typer.Option(help="slug; default: the only one")] = None,
    list_name: Annotated[str | None, typer.Option("--list", help="default audience")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a publication's weekly slot, e.g. --weekday 1 --time 09:00 --tz Asia/Shanghai."""
    from sqlalchemy import select

    from newsletter.core.db import session_scope
    from newsletter.models import Publication
    from newsletter.schedule.slots import set_schedule

    try:
        with session_scope() as s:
            q = select(Publication)
            if publication:
                q = q.where(Publication.slug == publication)
            pubs = s.scalars(q).all()
            if len(pubs) != 1:
                raise NewsletterError(
                    f"{len(pubs)} publications match; pass --publication SLUG"
                    if pubs
                    else "no publication yet: add an issue first"
                )
            pub = set_schedule(
                s, pubs[0], weekday=weekday, time=time, tz=tz, default_list=list_name
            )
            out = {"publication": pub.slug, "weekday": weekday, "time": time, "timezone": tz}
    except NewsletterError as exc:
        fail(exc)
    if not emit(out, as_json):
        console.print(f"{out['publication']}: every weekday {weekday} at {time} ({tz})")


# `newsletter send schedule` joins the send group: scheduling is this package's job.
@send_app.command("schedule")
def send_schedule(
    issue: Annotated[str, typer.Argument(help="issue id, or #number")],
    list_name: Annotated[
        str | None, typer.Option("--list", help="default: the publication's")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="ISO time with offset; default: next weekly slot")
    ] = None,
    variant: Annotated[str, typer.Option(help="preference, zh-Hans or zh-Hant")] = "preference",
    by: str = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Schedule an approved issue at the next weekly slot, or once at --at."""
    import datetime as dt

    from newsletter.audience.service import get_list
    from newsletter.core.db import session_scope
    from newsletter.issues.store import get_issue
    from newsletter.models import Publication
    from newsletter.schedule.slots import ScheduleError, schedule_send

    try:
        when = None
        if at:
            try:
                when = dt.datetime.fromisoformat(at)
            except ValueError:
                raise ScheduleError(
                    f"bad time {at!r}; expected e.g. 2026-11-30T09:00+08:00"
                ) from None
        with session_scope() as s:
            iss = get_issue(s, issue)
            pub = s.get(Publication, iss.publication_id)
            assert pub is not None
            if list_name:
                list_id = get_list(s, list_name).id
            elif pub.default_list_id:
                list_id = pub.default_list_id
            else:
                raise ScheduleError("no --list given and the publication has no default list")
            send = schedule_send(s, iss, list_id=list_id, at=when, variant_rule=variant, actor=by)
            out = {"send_id": send.id, "slot": send.slot, "scheduled_at": send.scheduled_at}
    except NewsletterError as exc:
        fail(exc)
    if not emit(out, as_json):
        console.print(f"send {out['send_id']} scheduled for {out['slot']}")
