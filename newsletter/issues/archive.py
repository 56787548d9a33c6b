"""The public archive: which issues are published, the search table, the search.

An issue is *published* when it was approved and sent (``issue.status ==
"sent"``).  Drafts, issues in review and approved issues not yet sent never
appear in the index, the search or the feeds, whoever previewed them.

The search table (:class:`~newsletter.models.ArchiveEntry`) holds one
plain-text row per issue and per item, per variant, written with the
renditions (:func:`index_issue`).  A search is a case-insensitive substring
match (``ILIKE '%q%'``) on title and body: on PostgreSQL a ``pg_trgm`` GIN
index serves it (Chinese has no spaces, so the default text-search parser
would treat a whole sentence as one word); on SQLite it is a plain ``LIKE``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from newsletter.content.model import Block
from newsletter.content.model import Issue as Doc
from newsletter.models import ArchiveEntry, Issue, Publication, Send

__all__ = [
    "COUNT_CAP",
    "MAX_QUERY",
    "PER_PAGE",
    "PUBLISHED",
    "Entry",
    "Published",
    "index_issue",
    "like_pattern",
    "published_issues",
    "search",
]

#: The issue status that makes an issue public in the index, the search and the feeds.
PUBLISHED = "sent"
PER_PAGE = 20
#: Search totals are exact up to here; past it the archive says "more than".
COUNT_CAP = 200
#: Longer queries are cut to this many characters (a title is at most 300).
MAX_QUERY = 100
_SUMMARY = 160


def _text(blocks: list[Block]) -> str:
    return "\n".join(b.text for b in blocks if b.text)


def _short(text: str, n: int = _SUMMARY) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def index_issue(session: Session, issue_id: int, doc: Doc, variant: str) -> None:
    """Replace the search rows of ``issue_id`` in ``variant`` by those of ``doc``."""
    session.execute(
        delete(ArchiveEntry).where(
            ArchiveEntry.issue_id == issue_id, ArchiveEntry.variant == variant
        )
    )
    intro = _text(doc.intro)
    lines = [doc.period, doc.preheader, intro]
    lines += [f"{s.numeral}、{s.title}" for s in doc.sections]
    session.add(
        ArchiveEntry(
            issue_id=issue_id,
            variant=variant,
            position=0,
            anchor="",
            title=doc.title[:500],
            summary=_short(
                doc.preheader or intro or "；".join(i.title for s in doc.sections for i in s.items)
            ),
            body="\n".join(x for x in lines if x).lower(),
        )
    )
    pos = 0
    for section in doc.sections:
        for item in section.items:
            pos += 1
            meta = "\n".join(f"{m.key}：{m.value}" for m in item.meta)
            body = "\n".join(
                x for x in (meta, _text(item.body), item.summary or "", _text(item.analysis)) if x
            )
            session.add(
                ArchiveEntry(
                    issue_id=issue_id,
                    variant=variant,
                    position=pos,
                    anchor=item.anchor[:64],
                    title=item.title[:500],
                    summary=_short(item.summary or _text(item.body) or meta),
                    body=body.lower(),
                )
            )


@dataclass(frozen=True, slots=True)
class Published:
    """One published issue as the index and the feeds show it."""

    number: int
    title: str
    period: str
    summary: str
    published_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Entry:
    """One search hit: an issue (``anchor`` empty) or one of its items."""

    number: int
    issue_title: str
    anchor: str
    title: str
    summary: str


def _published_at(session: Session, issue_ids: list[int]) -> dict[int, dt.datetime]:
    rows = session.execute(
        select(Send.issue_id, func.min(func.coalesce(Send.finished_at, Send.started_at)))
        .where(Send.issue_id.in_(issue_ids), Send.channel == "email")
        .group_by(Send.issue_id)
    ).all()
    return {i: t for i, t in rows if t is not None}


def published_issues(
    session: Session, pub: Publication, variant: str, *, page: int = 1, per_page: int = PER_PAGE
) -> tuple[list[Published], int]:
    """A page of published issues, newest first, and the number of published issues."""
    where = (Issue.publication_id == pub.id, Issue.status == PUBLISHED)
    total = int(session.scalar(select(func.count()).select_from(Issue).where(*where)) or 0)
    rows = session.execute(
        select(Issue.id, Issue.number, Issue.title, Issue.period, Issue.updated_at)
        .where(*where)
        .order_by(Issue.number.desc(), Issue.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    ids = [r.id for r in rows]
    when = _published_at(session, ids) if ids else {}
    heads: dict[int, tuple[str, str]] = {}
    if ids:
        for iid, title, summary in session.execute(
            select(ArchiveEntry.issue_id, ArchiveEntry.title, ArchiveEntry.summary).where(
                ArchiveEntry.issue_id.in_(ids),
                ArchiveEntry.variant == variant,
                ArchiveEntry.anchor == "",
            )
        ).all():
            heads[iid] = (title, summary)
    out = [
        Published(
            number=r.number,
            title=heads.get(r.id, (r.title, ""))[0],
            period=r.period,
            summary=heads.get(r.id, ("", ""))[1],
            published_at=when.get(r.id, r.updated_at),
        )
        for r in rows
    ]
    return out, total


def like_pattern(q: str) -> str:
    """``q`` as a LIKE pattern matching it anywhere, with ``\\``, ``%`` and ``_`` literal."""
    q = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{q}%"


def search(
    session: Session,
    pub: Publication,
    variant: str,
    q: str,
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> tuple[list[Entry], int]:
    """Published issues and items whose title or text contains ``q``; newest issue first.

    The total is exact up to :data:`COUNT_CAP`; past it the answer is ``COUNT_CAP + 1``
    ("more than COUNT_CAP"). Counting every hit of a phrase that is in every issue
    would recheck thousands of long texts; instead the first probe stops at the cap,
    and the page is then found by walking issue numbers down from the newest, in
    widening windows, where such a phrase is quickly found.
    """
    q = q.strip()[:MAX_QUERY]
    if not q:
        return [], 0
    pattern = like_pattern(q)
    where = (
        Issue.publication_id == pub.id,
        Issue.status == PUBLISHED,
        ArchiveEntry.variant == variant,
        or_(
            ArchiveEntry.title.ilike(pattern, escape="\\"),
            # the body is stored lower-cased: a plain LIKE (no per-row case folding of
            # long Chinese texts) is much cheaper to recheck and still uses the index
            ArchiveEntry.body.like(pattern.lower(), escape="\\"),
        ),
    )
    hits = select(
        Issue.number, Issue.title, ArchiveEntry.anchor, ArchiveEntry.title, ArchiveEntry.summary
    ).join(Issue, Issue.id == ArchiveEntry.issue_id)
    order = (Issue.number.desc(), ArchiveEntry.position)
    ids = list(
        session.scalars(
            select(ArchiveEntry.id)
            .join(Issue, Issue.id == ArchiveEntry.issue_id)
            .where(*where)
            .limit(COUNT_CAP + 1)
        )
    )
    offset = (page - 1) * per_page
    if len(ids) <= COUNT_CAP:  # every hit is known: order just those
        rows = (
            session.execute(
                hits.where(ArchiveEntry.id.in_(ids)).order_by(*order).offset(offset).limit(per_page)
            ).all()
            if ids
            else []
        )
        return _entries(session, pub, variant, rows), len(ids)
    top = int(
        session.scalar(
            select(func.max(Issue.number)).where(
                Issue.publication_id == pub.id, Issue.status == PUBLISHED
            )
        )
        or 0
    )
    # Found in so many places that the newest issues hold the page: read their rows
    # through the (issue, variant) index, with a substring test the trigram index
    # cannot serve, so the planner does not recheck every hit of the whole archive.
    needle = q.lower()
    find = func.instr if session.get_bind().dialect.name == "sqlite" else func.strpos
    found = or_(
        find(ArchiveEntry.body, needle) > 0, find(func.lower(ArchiveEntry.title), needle) > 0
    )
    width = 16
    while True:
        floor = top - width
        window = list(
            session.scalars(
                select(Issue.id).where(
                    Issue.publication_id == pub.id, Issue.status == PUBLISHED, Issue.number > floor
                )
            )
        )
        rows = session.execute(
            hits.where(ArchiveEntry.issue_id.in_(window), ArchiveEntry.variant == variant, found)
            .order_by(*order)
            .offset(offset)
            .limit(per_page)
        ).all()
        if len(rows) == per_page or floor < 0:
            return _entries(session, pub, variant, rows), COUNT_CAP + 1
        width *= 4


def _entries(session: Session, pub: Publication, variant: str, rows: Any) -> list[Entry]:
    """Hits with each issue's title in the page's variant (the issue row of the search
    table holds it: a Traditional page never names an issue in Simplified)."""
    numbers = {r[0] for r in rows}
    heads: dict[int, str] = {}
    if numbers:
        heads = dict(
            session.execute(
                select(Issue.number, ArchiveEntry.title)
                .join(Issue, Issue.id == ArchiveEntry.issue_id)
                .where(
                    Issue.publication_id == pub.id,
                    Issue.number.in_(numbers),
                    ArchiveEntry.variant == variant,
                    ArchiveEntry.anchor == "",
                )
            ).all()
        )
    return [Entry(n, heads.get(n, it), a, t, sm) for n, it, a, t, sm in rows]


# -- views of the web archive (counted per day in rate counters by web.public) --


def archive_key(slug: str, number: int) -> str:
    return f"archive-view:{slug}:{number}"


def archive_views(session: Any, slug: str, number: int) -> int:
    """Web-archive page views of an issue (all days)."""
    from sqlalchemy import func, select

    from newsletter.models import RateCounter

    return int(
        session.scalar(
            select(func.coalesce(func.sum(RateCounter.count), 0)).where(
                RateCounter.key == archive_key(slug, number)
            )
        )
        or 0
    )
