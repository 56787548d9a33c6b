"""``newsletter publications …``: list and create publications, and their learnt import
styles."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.core.errors import NewsletterError
from newsletter.core.terminal import JsonOpt, console, emit, fail
from newsletter.issues.cli import _publication_rules

__all__ = ["publications_app"]

publications_app = typer.Typer(
    help="Publications: list, create, learnt import styles", no_args_is_help=True
)
styles_app = typer.Typer(help="A publication's learnt import rules", no_args_is_help=True)
publications_app.add_typer(styles_app, name="styles")


def _publication_id(slug: str) -> int:
    """The publication's id, or one clear line and exit 2 for an unknown slug."""
    try:
        return _publication_rules(slug)[0]
    except NewsletterError as exc:
        fail(exc)


@styles_app.command("show")
def styles_show(slug: str, as_json: JsonOpt = False) -> None:
    """List the import rules a publication has learnt from corrections."""
    from newsletter.core.db import session_scope
    from newsletter.issues.styles import styles

    pub_id = _publication_id(slug)
    with session_scope() as s:
        rows = styles(s, pub_id)
    if emit(rows, as_json):
        return
    if not rows:
        console.print("还没有学到的导入规则 / no learnt import rules", markup=False)
        return
    for r in rows:
        what = f"以“{r['pattern']}”开头的行" if r["kind"] == "marker" else f"“{r['pattern']}”"
        console.print(f"{what} → {r['class']}    例：{r['example']}", markup=False)


@styles_app.command("reset")
def styles_reset(slug: str, as_json: JsonOpt = False) -> None:
    """Forget every import rule of a publication."""
    from newsletter.core.db import session_scope
    from newsletter.issues.styles import reset

    pub_id = _publication_id(slug)
    with session_scope() as s:
        n = reset(s, pub_id)
    if not emit({"removed": n}, as_json):
        console.print(f"已清除 {n} 条规则 / removed {n} rules", markup=False)


@publications_app.command("list")
def publications_list(as_json: JsonOpt = False) -> None:
    """List the publications with their slug, name, sender and weekly slot."""
    from sqlalchemy import func, select

    from newsletter.core.db import session_scope
    from newsletter.models import Issue, Publication

    with session_scope() as s:
        counts = dict(
            s.execute(
                select(Issue.publication_id, func.count())
                .where(Issue.kind == "weekly")
                .group_by(Issue.publication_id)
            ).all()
        )
        rows = [
            {
                "slug": p.slug,
                "name": p.name,
                "from": p.from_address,
                "timezone": p.timezone,
                "weekday": p.schedule_weekday,
                "time": p.schedule_time,
                "issues": int(counts.get(p.id, 0)),
            }
            for p in s.scalars(select(Publication).order_by(Publication.id))
        ]
    if emit(rows, as_json):
        return
    for r in rows:
        slot = f"周{r['weekday']} {r['time']}" if r["weekday"] else "未设时段 / no slot"
        console.print(
            f"{r['slug']}  {r['name']}  <{r['from']}>  {slot} {r['timezone']}  {r['issues']} 期",
            markup=False,
        )


@publications_app.command("create")
def publications_create(
    slug: str,
    name: Annotated[str, typer.Option(help="the publication's name, as readers see it")],
    from_name: Annotated[str, typer.Option(help="sender name (default: configured)")] = "",
    from_address: Annotated[str, typer.Option(help="sender address (default: configured)")] = "",
    postal_address: Annotated[str, typer.Option(help="postal address in the footer")] = "",
    timezone: Annotated[str, typer.Option(help="time zone of its weekly slot")] = "",
    by: Annotated[str, typer.Option(help="who creates it (recorded)")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Create a publication (its own explicit step: an import never invents one)."""
    from newsletter.core.db import session_scope
    from newsletter.issues.publications import create_publication

    try:
        with session_scope() as s:
            pub = create_publication(
                s,
                slug,
                name,
                by,
                from_name=from_name,
                from_address=from_address,
                postal_address=postal_address,
                timezone=timezone,
            )
            out = {"id": pub.id, "slug": pub.slug, "name": pub.name}
    except NewsletterError as exc:
        fail(exc)
    if not emit(out, as_json):
        console.print(f"已创建刊物 {out['slug']}（{out['name']}）/ created", markup=False)
