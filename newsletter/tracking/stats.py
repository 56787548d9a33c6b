"""Statistics for a send, read from rollups and delivery states only (no event scans)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..delivery.sends import state_counts
from ..errors import NotFound
from ..models import Issue, Link, RollupHourly, RollupLink, Send

__all__ = ["send_stats", "sparkline"]


def send_stats(session: Session, send_id: int) -> dict[str, Any]:
    send = session.get(Send, send_id)
    if send is None:
        raise NotFound(f"send {send_id} does not exist / 发送任务不存在")
    issue = session.get(Issue, send.issue_id)
    counts = state_counts(session, send_id)
    agg: dict[tuple[str, str], tuple[int, int]] = {}
    for kind, cls, total, uniq in session.execute(
        select(
            RollupHourly.kind,
            RollupHourly.cls,
            func.sum(RollupHourly.total),
            func.sum(RollupHourly.uniq),
        )
        .where(RollupHourly.send_id == send_id)
        .group_by(RollupHourly.kind, RollupHourly.cls)
    ):
        agg[(kind, cls)] = (int(total or 0), int(uniq or 0))

    def pick(kind: str, cls: str, i: int) -> int:
        return agg.get((kind, cls), (0, 0))[i]

    delivered = counts["sent"]
    opens_human_unique = pick("open", "human", 1) + pick("open", "unknown", 1)
    clicks_unique = pick("click", "human", 1) + pick("click", "unknown", 1)
    hourly = [
        (h.isoformat(), int(t or 0))
        for h, t in session.execute(
            select(RollupHourly.hour, func.sum(RollupHourly.total))
            .where(RollupHourly.send_id == send_id, RollupHourly.kind == "open")
            .group_by(RollupHourly.hour)
            .order_by(RollupHourly.hour)
        )
    ]
    links = [
        {"position": pos, "url": url, "clicks": int(total), "unique": int(uniq)}
        for pos, url, total, uniq in session.execute(
            select(RollupLink.link_position, Link.url, RollupLink.total, RollupLink.uniq)
            .join(
                Link,
                (Link.issue_id == send.issue_id) & (Link.position == RollupLink.link_position),
                isouter=True,
            )
            .where(RollupLink.send_id == send_id)
            .order_by(RollupLink.total.desc())
        )
    ]
    return {
        "send_id": send_id,
        "issue": issue.number if issue else None,
        "title": issue.title if issue else None,
        "state": send.state,
        "planned": send.planned_count,
        "excluded": send.excluded_count,
        **{f"deliveries_{k}": v for k, v in counts.items()},
        "delivered": delivered,
        "opens_unique": opens_human_unique,
        "opens_total_human": pick("open", "human", 0) + pick("open", "unknown", 0),
        "opens_total_machine": pick("open", "machine", 0),
        "open_rate": round(opens_human_unique / delivered, 4) if delivered else 0.0,
        "clicks_unique": clicks_unique,
        "clicks_total": pick("click", "human", 0) + pick("click", "unknown", 0),
        "clicks_machine": pick("click", "machine", 0),
        "click_rate": round(clicks_unique / delivered, 4) if delivered else 0.0,
        "opens_by_hour": hourly,
        "links": links,
    }


def sparkline(values: list[int]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    if not values:
        return ""
    top = max(values) or 1
    return "".join(bars[min(len(bars) - 1, v * (len(bars) - 1) // top)] for v in values)
