"""``newsletter subscribers|suppressions|segments|lists …``: the audience from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from newsletter.core.errors import NewsletterError
from newsletter.core.terminal import JsonOpt, console, emit, fail, print_counts

__all__ = ["lists_app", "seg_app", "subs_app", "supp_app"]

subs_app = typer.Typer(help="Subscribers: import and export", no_args_is_help=True)
lists_app = typer.Typer(help="Mailing lists", no_args_is_help=True)
supp_app = typer.Typer(help="The global suppression list", no_args_is_help=True)
seg_app = typer.Typer(help="Saved segments (JSON filters)", no_args_is_help=True)


@subs_app.command("import")
def subscribers_import(
    file: Path,
    list_name: Annotated[str, typer.Option("--list", help="list name (created if missing)")],
    resubscribe: Annotated[
        bool, typer.Option(help="re-subscribe suppressed/unsubscribed people (audited)")
    ] = False,
    report: Annotated[Path | None, typer.Option(help="error report CSV path")] = None,
    welcome: Annotated[
        bool, typer.Option(help="start the list's welcome series for the people added")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import a CSV or XLSX file of subscribers into a list."""
    from newsletter.audience.importer import import_file

    try:
        summary = import_file(
            file, list_name, resubscribe=resubscribe, welcome=welcome, report_path=report
        )
    except NewsletterError as exc:
        fail(exc)
    data = summary.as_dict()
    if emit(data, as_json):
        return
    print_counts(
        f"import {file.name} → {list_name} ({summary.encoding or 'xlsx'})",
        data,
        (
            "rows",
            "new",
            "updated",
            "unchanged",
            "invalid",
            "duplicate",
            "suppressed",
            "resubscribed",
        ),
    )
    if summary.report_path:
        console.print(f"row errors written to {summary.report_path}")


@subs_app.command("export")
def subscribers_export(
    list_name: Annotated[
        str | None, typer.Option("--list", help="default: every subscriber")
    ] = None,
    segment: Annotated[str | None, typer.Option(help="saved segment name or a JSON filter")] = None,
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("subscribers-export.csv"),
) -> None:
    """Export a list or segment to CSV (UTF-8 with BOM for Excel), streamed."""
    from newsletter.audience.export import iter_csv
    from newsletter.audience.service import get_list
    from newsletter.core.audit import audit
    from newsletter.core.db import session_scope

    try:
        with session_scope() as s:
            list_id = get_list(s, list_name).id if list_name else None
            defn = _segment_definition(s, segment) if segment else None
    except NewsletterError as exc:
        fail(exc)
    tmp = out.with_suffix(out.suffix + ".tmp")
    n = 0
    try:  # a temporary file, renamed when complete: never a half-written export
        with tmp.open("wb") as fh:
            for chunk in iter_csv(list_id, defn):
                fh.write(chunk)
                n += 1
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    with session_scope() as s:  # audited once the file is there
        audit(s, "cli", "subscribers.export", list_name or "*", segment=segment or "")
    console.print(f"wrote {n - 1} rows to {out}")


def _segment_definition(session: Any, ref: str) -> Any:
    from sqlalchemy import select

    from newsletter.audience.segments import SegmentError, validate
    from newsletter.models import Segment

    if ref.lstrip().startswith("{"):
        try:
            defn = json.loads(ref)
        except json.JSONDecodeError as exc:
            raise SegmentError(f"segment is not valid JSON: {exc}") from exc
    else:
        seg = session.scalar(select(Segment).where(Segment.name == ref))
        if seg is None:
            raise SegmentError(f"segment {ref!r} does not exist")
        defn = seg.definition
    validate(defn)
    return defn


@subs_app.command("add")
def subscribers_add(
    email_addr: Annotated[str, typer.Argument(metavar="EMAIL")],
    list_name: Annotated[str, typer.Option("--list")],
    name: str = "",
    variant: str = "zh-Hans",
    welcome: Annotated[
        bool, typer.Option(help="start the list's welcome series for this subscriber")
    ] = False,
) -> None:
    """Add one subscriber to a list (active: the operator vouches for consent)."""
    from newsletter.audience.addresses import normalise
    from newsletter.audience.service import get_or_create_list, is_suppressed
    from newsletter.core.audit import audit
    from newsletter.core.db import session_scope
    from newsletter.models import Subscriber, Subscription, utcnow

    try:
        addr = normalise(email_addr)
        with session_scope() as s:
            if is_suppressed(s, addr):
                raise NewsletterError(f"{addr} is suppressed; remove it from suppressions first")
            from sqlalchemy import select

            sub = s.scalar(select(Subscriber).where(Subscriber.email == addr))
            if sub is None:
                sub = Subscriber(email=addr, name=name, variant=variant, source="cli")
                s.add(sub)
                s.flush()
            ml = get_or_create_list(s, list_name)
            row = s.get(Subscription, (sub.id, ml.id))
            if row is None:
                row = Subscription(subscriber_id=sub.id, list_id=ml.id, status="active")
                s.add(row)
            else:
                row.status = "active"
            if welcome and row.confirmed_at is None:
                row.confirmed_at = utcnow()  # the series counts from here
            audit(s, "cli", "subscribers.add", addr, list=list_name, welcome=welcome)
    except NewsletterError as exc:
        fail(exc)
    console.print(f"{addr} subscribed to {list_name}")


@subs_app.command("remove")
def subscribers_remove(
    email_addr: Annotated[str, typer.Argument(metavar="EMAIL")],
    list_name: Annotated[str | None, typer.Option("--list", help="default: every list")] = None,
    erase: Annotated[bool, typer.Option(help="erase personal data (keeps a hash)")] = False,
) -> None:
    """Unsubscribe someone from a list or from everything; optionally erase their data."""
    from sqlalchemy import select

    from newsletter.audience.addresses import normalise
    from newsletter.audience.service import erase_subscriber, get_list, unsubscribe
    from newsletter.core.db import session_scope
    from newsletter.models import Subscriber

    try:
        addr = normalise(email_addr)
        with session_scope() as s:
            sub = s.scalar(select(Subscriber).where(Subscriber.email == addr))
            if sub is None:
                raise NewsletterError(f"{addr} is not a subscriber")
            list_id = get_list(s, list_name).id if list_name else None
            unsubscribe(s, sub.id, list_id, reason="operator")
            if erase:
                erase_subscriber(s, sub.id, actor="cli")
    except NewsletterError as exc:
        fail(exc)
    console.print(f"{addr} removed" + (" and erased" if erase else ""))


@subs_app.command("show")
def subscribers_show(email_addr: Annotated[str, typer.Argument(metavar="EMAIL")]) -> None:
    """Show everything stored about one subscriber (JSON)."""
    from sqlalchemy import select

    from newsletter.audience.addresses import normalise
    from newsletter.audience.service import export_personal_data
    from newsletter.core.db import session_scope
    from newsletter.models import Subscriber

    try:
        addr = normalise(email_addr)
        with session_scope() as s:
            sid = s.scalar(select(Subscriber.id).where(Subscriber.email == addr))
            if sid is None:
                raise NewsletterError(f"{addr} is not a subscriber")
            data = export_personal_data(s, sid)
    except NewsletterError as exc:
        fail(exc)
    emit(data, True)


@subs_app.command("search")
def subscribers_search(query: str, limit: int = 50, as_json: JsonOpt = False) -> None:
    """Find subscribers whose email or name contains QUERY."""
    from sqlalchemy import or_, select

    from newsletter.core.db import session_scope
    from newsletter.models import Subscriber

    like = f"%{query.strip().lower()}%"
    with session_scope() as s:
        rows = [
            {"email": e, "name": n, "variant": v, "status": st}
            for e, n, v, st in s.execute(
                select(Subscriber.email, Subscriber.name, Subscriber.variant, Subscriber.status)
                .where(or_(Subscriber.email.like(like), Subscriber.name.like(f"%{query}%")))
                .order_by(Subscriber.id)
                .limit(limit)
            )
        ]
    if emit(rows, as_json):
        return
    t = Table("email", "name", "variant", "status")
    for r in rows:
        t.add_row(r["email"], r["name"], r["variant"], r["status"])
    console.print(t)


@supp_app.command("add")
def suppressions_add(
    email_addr: Annotated[str, typer.Argument(metavar="EMAIL")],
    reason: Annotated[str, typer.Option(help="manual, complaint, hard_bounce")] = "manual",
    note: str = "",
) -> None:
    """Block an address from every send."""
    from newsletter.audience.service import suppress
    from newsletter.core.audit import audit
    from newsletter.core.db import session_scope

    try:
        with session_scope() as s:
            added = suppress(s, email_addr, reason, note=note)
            audit(s, "cli", "suppressions.add", email_addr, reason=reason)
    except NewsletterError as exc:
        fail(exc)
    console.print("suppressed" if added else "already suppressed")


@supp_app.command("remove")
def suppressions_remove(email_addr: Annotated[str, typer.Argument(metavar="EMAIL")]) -> None:
    """Lift a suppression (audited). The person is not resubscribed automatically."""
    from newsletter.audience.service import unsuppress
    from newsletter.core.audit import audit
    from newsletter.core.db import session_scope

    try:
        with session_scope() as s:
            removed = unsuppress(s, email_addr)
            audit(s, "cli", "suppressions.remove", email_addr)
    except NewsletterError as exc:
        fail(exc)
    console.print("removed" if removed else "was not suppressed")


@supp_app.command("list")
def suppressions_list(limit: int = 100, as_json: JsonOpt = False) -> None:
    """List suppressed addresses, newest first."""
    from sqlalchemy import select

    from newsletter.core.db import session_scope
    from newsletter.models import Suppression

    with session_scope() as s:
        rows = [
            {"email": x.email, "reason": x.reason, "note": x.note, "at": x.created_at}
            for x in s.scalars(select(Suppression).order_by(Suppression.id.desc()).limit(limit))
        ]
    if emit(rows, as_json):
        return
    t = Table("email", "reason", "when", "note")
    for r in rows:
        t.add_row(str(r["email"]), str(r["reason"]), str(r["at"])[:19], str(r["note"])[:60])
    console.print(t)


@seg_app.command("create")
def segments_create(
    name: str, definition: Annotated[str, typer.Argument(help="JSON filter")]
) -> None:
    """Save a segment, e.g. '{"all":[{"list":"周报订阅"},{"opened_in_last_sends":4}]}'."""
    from newsletter.core.db import session_scope
    from newsletter.models import Segment

    try:
        with session_scope() as s:
            defn = _segment_definition(s, definition)
            s.add(Segment(name=name, definition=defn))
    except NewsletterError as exc:
        fail(exc)
    console.print(f"segment {name} saved")


@seg_app.command("count")
def segments_count(
    segment: Annotated[str, typer.Argument(help="saved name or JSON filter")],
    list_name: Annotated[str | None, typer.Option("--list")] = None,
) -> None:
    """How many active subscribers match (evaluated in the database)."""
    from newsletter.audience.segments import count
    from newsletter.audience.service import get_list
    from newsletter.core.db import session_scope

    try:
        with session_scope() as s:
            list_id = get_list(s, list_name).id if list_name else None
            n = count(s, _segment_definition(s, segment), list_id)
    except NewsletterError as exc:
        fail(exc)
    console.print(str(n))


@seg_app.command("list")
def segments_list(as_json: JsonOpt = False) -> None:
    """List saved segments."""
    from sqlalchemy import select

    from newsletter.core.db import session_scope
    from newsletter.models import Segment

    with session_scope() as s:
        rows = [
            {"name": g.name, "definition": g.definition}
            for g in s.scalars(select(Segment).order_by(Segment.name))
        ]
    if emit(rows, as_json):
        return
    for r in rows:
        console.print(f"{r['name']}: {json.dumps(r['definition'], ensure_ascii=False)}")


# -- lists ---------------------------------------------------------------------


@lists_app.command("create")
def lists_create(name: str, description: str = "") -> None:
    """Create a list."""
    from newsletter.audience.service import get_or_create_list
    from newsletter.core.db import session_scope

    with session_scope() as s:
        ml = get_or_create_list(s, name, description)
        console.print(f"list {ml.id}: {ml.name}")


@lists_app.command("list")
def lists_list(as_json: JsonOpt = False) -> None:
    """Show lists with their member counts."""
    from sqlalchemy import func, select

    from newsletter.core.db import session_scope
    from newsletter.models import MailingList, Subscription

    with session_scope() as s:
        rows = [
            {"id": i, "name": n, "active": a or 0}
            for i, n, a in s.execute(
                select(MailingList.id, MailingList.name, func.count(Subscription.subscriber_id))
                .join(
                    Subscription,
                    (Subscription.list_id == MailingList.id) & (Subscription.status == "active"),
                    isouter=True,
                )
                .group_by(MailingList.id, MailingList.name)
            )
        ]
    if emit(rows, as_json):
        return
    t = Table("id", "name", "active")
    for r in rows:
        t.add_row(str(r["id"]), str(r["name"]), str(r["active"]))
    console.print(t)


@lists_app.command("show")
def lists_show(name: str, as_json: JsonOpt = False) -> None:
    """A list's members by subscription status."""
    from sqlalchemy import func, select

    from newsletter.audience.service import get_list
    from newsletter.core.db import session_scope
    from newsletter.models import Subscription

    try:
        with session_scope() as s:
            ml = get_list(s, name)
            counts = dict(
                s.execute(
                    select(Subscription.status, func.count())
                    .where(Subscription.list_id == ml.id)
                    .group_by(Subscription.status)
                ).all()
            )
            data = {
                "id": ml.id,
                "name": ml.name,
                "description": ml.description,
                **{k: counts.get(k, 0) for k in ("active", "unconfirmed", "unsubscribed")},
            }
    except NewsletterError as exc:
        fail(exc)
    if not emit(data, as_json):
        console.print(data)
