"""WeChat read statistics: the daily datacube sync and per-issue totals.

Guarantees: :func:`sync_stats` is idempotent (upsert on message, article index
and date, so re-running a day overwrites it with WeChat's latest numbers); it asks
only for dates WeChat serves (up to yesterday, Beijing time) and keeps every
request within the endpoint's span (``getarticlesummary``: one day per call,
one call per date shared by all issues).  Each issue is followed for 7 days
from its publish / mass-send date.

Every pushed message is covered: a mass send answered by 45065 after a crash
carries no ``msg_data_id``, so before syncing, such a push is matched to the
datacube rows of its send date by its article titles (in order), among the
message ids that no other publication claims; it is recorded once matched.

Definitions used everywhere (CLI, console, CSV):

* **reads** (阅读次数): page views of the issue's articles, WeChat's
  ``int_page_read_count`` summed over articles and days;
* **readers** (阅读人数): WeChat's daily unique readers (``int_page_read_user``)
  summed over articles and days: a follower who reads on two days counts twice,
  because WeChat gives no unique count over a period;
* **shares** (分享次数): ``share_count`` summed the same way.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.core import clock
from newsletter.core.db import session_scope
from newsletter.core.wechat_settings import WeChatSettings, get_wechat_settings
from newsletter.models import utcnow
from newsletter.models.wechat import WeChatArticleStat, WeChatPublication
from newsletter.wechat.client import WeChatClient

__all__ = [
    "FOLLOW_DAYS",
    "all_issue_totals",
    "issue_totals",
    "sync_stats",
    "wechat_only_issues",
]

log = logging.getLogger("newsletter.wechat")
CST = dt.timezone(dt.timedelta(hours=8))
FOLLOW_DAYS = 7
_FIELDS = {
    "read_user": "int_page_read_user",
    "read_count": "int_page_read_count",
    "share_user": "share_user",
    "share_count": "share_count",
    "fav_user": "add_to_fav_user",
    "fav_count": "add_to_fav_count",
}


def _wanted(today: dt.date, days: int) -> dict[dt.date, dict[str, tuple[int, int]]]:
    """date → {msg_data_id: (publication id, issue id)} still to sync."""
    out: dict[dt.date, dict[str, tuple[int, int]]] = defaultdict(dict)
    oldest = today - dt.timedelta(days)
    with session_scope() as s:
        rows = s.scalars(
            select(WeChatPublication).where(
                WeChatPublication.sent_date.is_not(None),
                WeChatPublication.sent_date >= (oldest - dt.timedelta(FOLLOW_DAYS)).isoformat(),
            )
        )
        for pub in rows:
            assert pub.sent_date is not None
            sent = dt.date.fromisoformat(pub.sent_date)
            msgs = {m for m in (pub.msg_data_id, pub.publish_msg_data_id) if m}
            for k in range(FOLLOW_DAYS):
                d = sent + dt.timedelta(k)
                if oldest <= d < today:
                    for m in msgs:
                        out[d][m] = (pub.id, pub.issue_id)
    return dict(out)


def _upsert(session: Session, values: dict[str, Any]) -> None:
    mod = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = mod.insert(WeChatArticleStat).values(**values)
    keep = {k: stmt.excluded[k] for k in (*_FIELDS, "title", "raw")}
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["msg_data_id", "article_index", "ref_date"],
            set_={**keep, "synced_at": utcnow()},
        )
    )


def sync_stats(
    *,
    today: dt.date | None = None,
    days: int = FOLLOW_DAYS,
    settings: WeChatSettings | None = None,
    client: WeChatClient | None = None,
) -> dict[str, int]:
    """Pull ``getarticlesummary`` for the last ``days`` days of every published issue."""
    today = today or clock.today_in(CST)
    orphans = _orphans(today, days)
    if not orphans and not _wanted(today, days):
        return {"dates": 0, "rows": 0, "calls": 0}
    cl = client or WeChatClient(settings or get_wechat_settings())
    rows = calls = 0
    try:
        calls += _recover_data_ids(cl, orphans)
        wanted = _wanted(today, days)
        for d in sorted(wanted):
            items = cl.datacube("getarticlesummary", d.isoformat(), d.isoformat())
            calls += 1
            with session_scope() as s:
                for it in items:
                    data_id, _, idx = str(it.get("msgid", "")).rpartition("_")
                    if data_id not in wanted[d] or not idx.isdigit():
                        continue
                    pub_id, issue_id = wanted[d][data_id]
                    _upsert(
                        s,
                        {
                            "publication_id": pub_id,
                            "issue_id": issue_id,
                            "msg_data_id": data_id,
                            "article_index": int(idx),
                            "ref_date": d.isoformat(),
                            "title": str(it.get("title", ""))[:200],
                            "raw": it,
                            "synced_at": utcnow(),
                            **{k: int(it.get(v, 0) or 0) for k, v in _FIELDS.items()},
                        },
                    )
                    rows += 1
    finally:
        if client is None:
            cl.close()
    return {"dates": len(wanted), "rows": rows, "calls": calls}


def _orphans(today: dt.date, days: int) -> list[tuple[int, list[str], str, list[str]]]:
    """Pushes and publishes whose msg_data_id is unknown.

    (publication id, the unknown columns, send date, article titles) each.
    """
    oldest = today - dt.timedelta(days + FOLLOW_DAYS)
    P = WeChatPublication
    out = []
    with session_scope() as s:
        rows = s.scalars(
            select(P).where(
                P.sent_date.is_not(None),
                P.sent_date >= oldest.isoformat(),
                P.sent_date < today.isoformat(),
                ((P.msg_id.is_not(None)) & (P.msg_data_id.is_(None)))
                | ((P.publish_status == 0) & (P.publish_msg_data_id.is_(None))),
            )
        )
        for pub in rows:
            missing = []
            if pub.msg_id and not pub.msg_data_id:
                missing.append("msg_data_id")
            if pub.publish_status == 0 and not pub.publish_msg_data_id:
                missing.append("publish_msg_data_id")
            out.append((pub.id, missing, str(pub.sent_date), list(pub.article_titles or [])))
    return out


def _recover_data_ids(
    cl: WeChatClient, orphans: list[tuple[int, list[str], str, list[str]]]
) -> int:
    """Find the unknown message ids in the datacube rows of the send date.

    A message matches when its article titles, in order, are the publication's
    and no other publication claims it. Both messages of one issue (its publish
    and its push) are credited to the same issue, so when both are unknown the
    order in which they are assigned does not change any number.
    """
    calls = 0
    by_date: dict[str, dict[str, dict[int, str]]] = {}
    for pub_id, missing, sent, titles in orphans:
        if sent not in by_date:
            messages: dict[str, dict[int, str]] = defaultdict(dict)
            for it in cl.datacube("getarticlesummary", sent, sent):
                data_id, _, idx = str(it.get("msgid", "")).rpartition("_")
                if data_id and idx.isdigit():
                    messages[data_id][int(idx)] = str(it.get("title", ""))
            by_date[sent] = messages
            calls += 1
        with session_scope() as s:
            claimed = {
                m
                for row in s.execute(
                    select(WeChatPublication.msg_data_id, WeChatPublication.publish_msg_data_id)
                )
                for m in row
                if m
            }
            found = sorted(
                data_id
                for data_id, arts in by_date[sent].items()
                if data_id not in claimed and [arts[i] for i in sorted(arts)] == titles
            )
            if len(found) == len(missing):
                s.execute(
                    update(WeChatPublication)
                    .where(WeChatPublication.id == pub_id)
                    .values(dict(zip(missing, found, strict=True)))
                )
            else:
                log.warning(
                    "wechat stats: publication %s: %d unknown message id(s), %d candidates on %s",
                    pub_id,
                    len(missing),
                    len(found),
                    sent,
                )
    return calls


def issue_totals(issue_id: int) -> dict[str, Any]:
    """Reads, shares and favourites of an issue on WeChat, in total and per article.

    ``read_count`` sums WeChat's daily page views; ``read_user`` sums its daily
    unique readers (a reader on two days counts twice: WeChat gives no overall unique).
    """
    cols = [func.coalesce(func.sum(getattr(WeChatArticleStat, k)), 0) for k in _FIELDS]
    with session_scope() as s:
        total = s.execute(select(*cols).where(WeChatArticleStat.issue_id == issue_id)).one()
        per = s.execute(
            select(WeChatArticleStat.article_index, func.max(WeChatArticleStat.title), *cols)
            .where(WeChatArticleStat.issue_id == issue_id)
            .group_by(WeChatArticleStat.article_index)
            .order_by(WeChatArticleStat.article_index)
        ).all()
        days = s.scalar(
            select(func.count(func.distinct(WeChatArticleStat.ref_date))).where(
                WeChatArticleStat.issue_id == issue_id
            )
        )
        last = s.scalar(
            select(func.max(WeChatArticleStat.synced_at)).where(
                WeChatArticleStat.issue_id == issue_id
            )
        )
    out: dict[str, Any] = _named(dict(zip(_FIELDS, (int(v) for v in total), strict=True)))
    out["days"] = int(days or 0)
    out["last_synced"] = last.isoformat() if last else None
    out["articles"] = [
        {"index": r[0], "title": r[1], **dict(zip(_FIELDS, (int(v) for v in r[2:]), strict=True))}
        for r in per
    ]
    return out


def all_issue_totals() -> dict[int, dict[str, int]]:
    """issue id → totals (no per-article detail), for the trend across issues."""
    cols = [func.coalesce(func.sum(getattr(WeChatArticleStat, k)), 0) for k in _FIELDS]
    with session_scope() as s:
        rows = s.execute(
            select(WeChatArticleStat.issue_id, *cols).group_by(WeChatArticleStat.issue_id)
        ).all()
    return {
        int(r[0]): _named(dict(zip(_FIELDS, (int(v) for v in r[1:]), strict=True))) for r in rows
    }


def _named(totals: dict[str, Any]) -> dict[str, Any]:
    """Add the three figures every view shows, under the names defined above."""
    totals["reads"] = totals["read_count"]
    totals["readers"] = totals["read_user"]
    totals["shares"] = totals["share_count"]
    return totals


def wechat_only_issues(exclude: set[int]) -> list[dict[str, Any]]:
    """Issues that went to WeChat (published or pushed), except ``exclude``; oldest first.

    For the trends: an issue sent only to WeChat has no email send, yet it is
    an issue of the publication and its readers count.
    """
    from newsletter.models import Issue

    P = WeChatPublication
    with session_scope() as s:
        rows = s.execute(
            select(Issue.id, Issue.number, Issue.title, func.min(P.sent_date), func.min(P.send_id))
            .join(P, P.issue_id == Issue.id)
            .where(P.sent_date.is_not(None))
            .group_by(Issue.id, Issue.number, Issue.title)
            .order_by(func.min(P.sent_date))
        ).all()
    return [
        {"issue_id": int(r[0]), "issue": r[1], "title": r[2], "sent_date": r[3], "send_id": r[4]}
        for r in rows
        if int(r[0]) not in exclude
    ]
