"""Statistics for sends, read from rollups and cached delivery counts (no event scans).

Every function returns JSON-ready values (ints, floats, strings, ISO times),
so the console and the JSON API can serve them as they are:

* :func:`send_stats`: one send: totals, rates, hourly series, per link, per
  variant, per domain group, and the issue's WeChat numbers when there are any;
* :func:`trend`: the last N sends side by side;
* :func:`export_recipients_csv` / :func:`export_links_csv`: CSV, streamed;
* :func:`purge`: the retention of raw events (rollups stay).

Denominators per variant and domain group come from ``send_audience``: a
GROUP BY over the send's deliveries, cached once the send is finished
(invalidated when a late bounce arrives).  While a send runs it is computed
live.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound
from newsletter.core.safety.csvsafe import writer as csv_writer
from newsletter.delivery.sends import state_counts
from newsletter.models import (
    Delivery,
    Event,
    Issue,
    Link,
    RollupHourly,
    Send,
    Subscriber,
)
from newsletter.models.tracking import RollupLinkCls, RollupSegment
from newsletter.tracking import data
from newsletter.tracking.audience import STATES, Tallies, tallies
from newsletter.tracking.rollups import domain_group
from newsletter.tracking.spark import sparkline

__all__ = [
    "export_links_csv",
    "export_recipients_csv",
    "send_stats",
    "sparkline",
    "trend",
]

TERMINAL = ("finished", "cancelled", "failed", "empty")


def _rate(n: int, d: int) -> float:
    return round(n / d, 4) if d else 0.0


# -- denominators ------------------------------------------------------------------


def _tallies(session: Session, send: Send) -> Tallies:
    """The deliveries by (variant, domain group) and state, per relay, and at risk: one
    GROUP BY, kept once the send has ended."""
    return tallies(session, send.id, send.state in TERMINAL)


# -- one send -------------------------------------------------------------------------


def _empty() -> dict[str, int]:
    return defaultdict(int)  # type: ignore[return-value]


def _fold(acc: dict[str, int], kind: str, cls: str, total: int, uniq: int) -> None:
    side = "machine" if cls == "machine" else "human"
    acc[f"{kind}_{side}_total"] += total
    acc[f"{kind}_{side}_unique"] += uniq


def _figures(acc: dict[str, int], delivered: int) -> dict[str, Any]:
    ou, cu = acc["open_human_unique"], acc["click_human_unique"]
    return {
        "delivered": delivered,
        "opens_unique": ou,
        "opens_total_human": acc["open_human_total"],
        "opens_unique_machine": acc["open_machine_unique"],
        "opens_total_machine": acc["open_machine_total"],
        "open_rate": _rate(ou, delivered),
        "clicks_unique": cu,
        "clicks_total": acc["click_human_total"],
        "clicks_unique_machine": acc["click_machine_unique"],
        "clicks_machine": acc["click_machine_total"],
        "click_rate": _rate(cu, delivered),
        "click_to_open_rate": _rate(cu, ou),
        "unsubscribes": acc["unsubscribe_human_unique"] + acc["unsubscribe_machine_unique"],
        "bounces": acc["bounce_human_unique"] + acc["bounce_machine_unique"],
        "complaints": acc["complaint_human_unique"] + acc["complaint_machine_unique"],
        "unsubscribe_rate": _rate(
            acc["unsubscribe_human_unique"] + acc["unsubscribe_machine_unique"], delivered
        ),
        "complaint_rate": _rate(
            acc["complaint_human_unique"] + acc["complaint_machine_unique"], delivered
        ),
    }


def send_stats(session: Session, send_id: int, *, wechat: bool = True) -> dict[str, Any]:
    """Everything about one send, from rollups (the shape is documented in docs/tracking.md)."""
    send = session.get(Send, send_id)
    if send is None:
        raise NotFound(f"send {send_id} does not exist / 发送任务不存在")
    issue = session.get(Issue, send.issue_id)
    tally = _tallies(session, send)
    audience = tally.audience
    if audience or send.state in TERMINAL:
        counts = dict.fromkeys(STATES, 0)
        for states in audience.values():
            for st, n in states.items():
                counts[st] += n
    else:
        counts = state_counts(session, send_id)
    delivered = counts["sent"]

    total = _empty()
    per_variant: dict[str, dict[str, int]] = defaultdict(_empty)
    per_group: dict[str, dict[str, int]] = defaultdict(_empty)
    hours: dict[dt.datetime, dict[str, int]] = defaultdict(_empty)
    R = RollupSegment
    for variant, group, kind, cls, t, u in session.execute(
        select(R.variant, R.domain_group, R.kind, R.cls, R.total, R.uniq).where(
            R.send_id == send_id
        )
    ):
        for acc in (total, per_variant[variant], per_group[group]):
            _fold(acc, kind, cls, int(t), int(u))
    for hour, kind, cls, t, u in session.execute(
        select(RollupHourly.hour, RollupHourly.kind, RollupHourly.cls, RollupHourly.total,
               RollupHourly.uniq)
        .where(RollupHourly.send_id == send_id)
    ):  # fmt: skip
        _fold(hours[hour], kind, cls, int(t), int(u))

    fig = _figures(total, delivered)
    hourly = [
        {
            "hour": h.isoformat(),
            "opens_human": a["open_human_total"],
            "opens_machine": a["open_machine_total"],
            "opens_unique": a["open_human_unique"],
            "clicks_human": a["click_human_total"],
            "clicks_machine": a["click_machine_total"],
            "unsubscribes": a["unsubscribe_human_total"] + a["unsubscribe_machine_total"],
        }
        for h, a in sorted(hours.items())
    ]

    def delivered_where(pred: Any) -> int:
        return sum(st["sent"] for key, st in audience.items() if pred(key))

    by_variant = [
        {"variant": v, **_figures(per_variant[v], delivered_where(lambda k, v=v: k[0] == v))}
        for v in sorted(set(per_variant) | {k[0] for k in audience})
    ]
    by_domain = [
        {"group": g, **_figures(per_group[g], delivered_where(lambda k, g=g: k[1] == g))}
        for g in data.GROUP_ORDER
        if g in per_group or any(k[1] == g for k in audience)
    ]

    link_rows: dict[int, dict[str, Any]] = {
        pos: {"position": pos, "url": url, "text": label or "", "clicks": 0, "unique": 0,
              "clicks_machine": 0, "unique_machine": 0}
        for pos, url, label in session.execute(
            select(Link.position, Link.url, Link.text).where(Link.issue_id == send.issue_id)
        )
    }  # fmt: skip
    for pos, url, label, cls, t, u in session.execute(
        select(RollupLinkCls.link_position, Link.url, Link.text, RollupLinkCls.cls,
               RollupLinkCls.total, RollupLinkCls.uniq)
        .join(Link, (Link.issue_id == send.issue_id) & (Link.position == RollupLinkCls.link_position),
              isouter=True)
        .where(RollupLinkCls.send_id == send_id)
    ):  # fmt: skip
        row = link_rows.setdefault(
            pos,
            {"position": pos, "url": url, "text": label or "", "clicks": 0, "unique": 0,
             "clicks_machine": 0, "unique_machine": 0},
        )  # fmt: skip
        if cls == "machine":
            row["clicks_machine"] += int(t)
            row["unique_machine"] += int(u)
        else:
            row["clicks"] += int(t)
            row["unique"] += int(u)
    links = sorted(link_rows.values(), key=lambda r: (-r["clicks"], r["position"]))
    for r in links:
        r["click_rate"] = _rate(r["unique"], delivered)
    archive = 0
    if issue is not None:
        from newsletter.issues.archive import archive_views
        from newsletter.models import Publication

        pub = session.get(Publication, issue.publication_id)
        archive = archive_views(session, pub.slug, issue.number) if pub else 0

    return {
        "archive_views": archive,
        "at_risk": tally.at_risk,
        "relays": tally.relays,  # sent per relay
        "send_id": send_id,
        "issue": issue.number if issue else None,
        "issue_id": send.issue_id,
        "title": issue.title if issue else None,
        "state": send.state,
        "started_at": send.started_at.isoformat() if send.started_at else None,
        "planned": send.planned_count,
        "excluded": send.excluded_count,
        **{f"deliveries_{k}": v for k, v in counts.items()},
        **fig,
        "opens_by_hour": [
            (h["hour"], h["opens_human"]) for h in hourly if h["opens_human"] or h["opens_machine"]
        ],
        "hourly": hourly,
        "links": links,
        "by_variant": by_variant,
        "by_domain": by_domain,
        "wechat": _wechat(send.issue_id) if wechat else None,
        "subject_test": _subject_test(session, send),
    }


def _subject_test(session: Session, send: Send) -> dict[str, Any] | None:
    """Each subject side by side (whole send) and the recorded decision, if any."""
    if not send.subject_variants:
        return None
    from newsletter.delivery.subjects import variant_stats

    return {
        "metric": send.test_metric,
        "share": send.test_share,
        "decide_at": send.test_decide_at.isoformat() if send.test_decide_at else None,
        "winner": send.test_winner,
        "variants": variant_stats(session, send.id),
        "decision": send.test_report,
    }


def _wechat(issue_id: int) -> dict[str, Any] | None:
    """The issue's WeChat read numbers, or None when WeChat has none."""
    try:
        from newsletter.wechat.stats import issue_totals

        w = issue_totals(issue_id)
    except Exception:  # the WeChat tables are optional for the email stats
        return None
    return w if w.get("days") else None


# -- across sends ------------------------------------------------------------------------


def trend(
    session: Session, last: int = 8, *, publication_id: int | None = None
) -> list[dict[str, Any]]:
    """The last ``last`` email sends (oldest first) with their key figures and WeChat reads."""
    q = select(Send).where(
        Send.channel == "email",
        Send.kind == "issue",
        Send.state.in_(("sending", "paused", *TERMINAL)),
    )
    if publication_id is not None:
        q = q.where(Send.publication_id == publication_id)
    sends = list(session.scalars(q.order_by(Send.id.desc()).limit(last)))
    if not sends:
        return []
    ids = [s.id for s in sends]
    accs: dict[int, dict[str, int]] = defaultdict(_empty)
    for sid, kind, cls, t, u in session.execute(
        select(RollupSegment.send_id, RollupSegment.kind, RollupSegment.cls,
               func.sum(RollupSegment.total), func.sum(RollupSegment.uniq))
        .where(RollupSegment.send_id.in_(ids))
        .group_by(RollupSegment.send_id, RollupSegment.kind, RollupSegment.cls)
    ):  # fmt: skip
        _fold(accs[sid], kind, cls, int(t or 0), int(u or 0))
    wechat: dict[int, dict[str, int]] = {}
    try:
        from newsletter.wechat.stats import all_issue_totals

        wechat = all_issue_totals()
    except Exception:
        wechat = {}
    out = []
    for send in reversed(sends):
        issue = session.get(Issue, send.issue_id)
        aud = _tallies(session, send).audience
        delivered = (
            sum(st["sent"] for st in aud.values())
            if aud or send.state in TERMINAL
            else state_counts(session, send.id)["sent"]
        )
        f = _figures(accs[send.id], delivered)
        out.append(
            {
                "send_id": send.id,
                "issue": issue.number if issue else None,
                "title": issue.title if issue else None,
                "started_at": send.started_at.isoformat() if send.started_at else None,
                **f,
                "wechat_reads": (wechat.get(send.issue_id) or {}).get("read_count"),
            }
        )
    return out


# -- CSV exports (streamed) ------------------------------------------------------------------


def _csv_line(row: list[Any]) -> str:
    buf = io.StringIO()
    csv_writer(buf).writerow(row)  # formula cells neutralised (OWASP)
    return buf.getvalue()


RECIPIENT_COLUMNS = [
    "delivery_id", "email", "variant", "domain_group", "state", "sent_at", "first_open_at",
    "first_click_at", "opens_human", "opens_machine", "clicks_human", "clicks_machine",
    "unsubscribed", "bounced", "complained",
]  # fmt: skip


def export_recipients_csv(send_id: int, *, chunk: int = 5000) -> Iterator[str]:
    """Per-recipient activity of a send as CSV lines (header first), streamed.

    Counts come from the raw events, so they cover the retention period only;
    first open/click times come from the delivery rows and are always there.
    """
    yield _csv_line(RECIPIENT_COLUMNS)
    with session_scope() as s:
        if s.get(Send, send_id) is None:
            raise NotFound(f"send {send_id} does not exist / 发送任务不存在")

        def n(kind: str, machine: bool | None = None) -> Any:
            cond = Event.kind == kind
            if machine is not None:
                cond = cond & ((Event.cls == "machine") if machine else (Event.cls != "machine"))
            return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

        agg = (
            select(
                Event.delivery_id.label("did"),
                n("open", False).label("oh"),
                n("open", True).label("om"),
                n("click", False).label("ch"),
                n("click", True).label("cm"),
                n("unsubscribe").label("un"),
                n("bounce").label("bo"),
                n("complaint").label("co"),
            )
            .where(Event.send_id == send_id)
            .group_by(Event.delivery_id)
            .subquery()
        )
        q = (
            select(Delivery.id, Subscriber.email, Delivery.variant, Delivery.state,
                   Delivery.sent_at, Delivery.first_open_at, Delivery.first_click_at,
                   agg.c.oh, agg.c.om, agg.c.ch, agg.c.cm, agg.c.un, agg.c.bo, agg.c.co)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .join(agg, agg.c.did == Delivery.id, isouter=True)
            .where(Delivery.send_id == send_id)
            .order_by(Delivery.id)
            .execution_options(yield_per=chunk)
        )  # fmt: skip
        for r in s.execute(q):
            yield _csv_line([
                r[0], r[1], r[2], domain_group(r[1]), r[3],
                *(t.isoformat() if t else "" for t in r[4:7]),
                *(int(x or 0) for x in r[7:11]),
                *(int(bool(x)) for x in r[11:14]),
            ])  # fmt: skip


def export_links_csv(session: Session, send_id: int) -> Iterator[str]:
    """Per-link clicks of a send as CSV lines (from rollups)."""
    st = send_stats(session, send_id, wechat=False)
    cols = ["position", "url", "text", "clicks", "unique", "click_rate", "clicks_machine",
            "unique_machine"]  # fmt: skip
    yield _csv_line(cols)
    for r in sorted(st["links"], key=lambda r: r["position"]):
        yield _csv_line([r[c] for c in cols])
