"""Console services for statistics: one send, the trend over sends, and their CSV files."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

from fastapi import Request
from sqlalchemy import func, select

from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound
from newsletter.core.safety.csvsafe import writer as csv_writer
from newsletter.models import Issue, RollupHourly, Send
from newsletter.web.console.auth import Principal, record
from newsletter.web.console.services.common import ConsoleError

__all__ = ["MAX_COMPARE", "compare", "parse_day", "stats", "stats_csv", "trends", "trends_csv"]

#: The console's calendar (dates typed into the stats filter are days in China).
CST = dt.timezone(dt.timedelta(hours=8))
MAX_COMPARE = 4


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=CST)


def parse_day(value: str, what: str) -> dt.date | None:
    """``YYYY-MM-DD`` (empty: None); anything else is refused in one bilingual line."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ConsoleError(
            f"{what}日期无效，请用 2026-01-31 的格式 / bad date: use the form 2026-01-31"
        ) from None
    if not 2000 <= day.year <= 2100:
        raise ConsoleError(f"{what}日期超出范围 / date out of range")
    return day


def compare(send_ids: list[int]) -> list[dict[str, Any]]:
    """Two to four sends' figures side by side (unknown ids are refused, by id)."""
    ids = list(dict.fromkeys(send_ids))
    if not 2 <= len(ids) <= MAX_COMPARE:
        raise ConsoleError(
            f"请选择 2 到 {MAX_COMPARE} 个发送任务 / choose 2 to {MAX_COMPARE} sends"
        )
    out = []
    for sid in ids:
        try:
            out.append(stats(sid))
        except NotFound:
            raise NotFound(f"发送任务 {sid} 不存在 / send {sid} does not exist") from None
    return out


def stats(send_id: int) -> dict[str, Any]:
    from newsletter.reports.stats import send_stats

    with session_scope() as s:
        data = send_stats(s, send_id)
        send = s.get(Send, send_id)
        assert send is not None
        # Unsubscribes are those attributed to this send (the tracking rollups count an
        # unsubscribe against the delivery the reader was reading), never every
        # unsubscribe from the list since the send started.
        data["bounces"] = data.get("deliveries_bounced", 0)
        data["issue_id"] = send.issue_id
        data["started_at"] = send.started_at.isoformat() if send.started_at else None
    try:
        from newsletter.wechat.stats import issue_totals

        data["wechat"] = issue_totals(data["issue_id"])
    except Exception:  # no WeChat statistics yet
        data["wechat"] = None
    return data


def trends(
    limit: int = 100, since: dt.date | None = None, until: dt.date | None = None
) -> list[dict[str, Any]]:
    """Per send (email, started), oldest first: planned, unique opens/clicks and their rates.

    ``since`` / ``until`` (inclusive, UTC+8 calendar days) keep the sends started in
    that range.  Read from the send rows and the hourly rollups only, so it stays
    fast with millions of deliveries; rates are relative to the planned deliveries.
    """
    stmt = (
        select(Send.id, Send.planned_count, Send.started_at, Issue.number, Issue.title)
        .join(Issue, Issue.id == Send.issue_id)
        .where(Send.channel == "email", Send.kind == "issue", Send.started_at.is_not(None))
    )
    if since is not None:
        stmt = stmt.where(Send.started_at >= _day_start(since))
    if until is not None:
        stmt = stmt.where(Send.started_at < _day_start(until + dt.timedelta(days=1)))
    with session_scope() as s:
        sends = s.execute(stmt.order_by(Send.id.desc()).limit(limit)).all()
        ids = [r.id for r in sends]
        agg: dict[tuple[int, str], int] = {}
        if ids:
            for sid, kind, uniq in s.execute(
                select(RollupHourly.send_id, RollupHourly.kind, func.sum(RollupHourly.uniq))
                .where(RollupHourly.send_id.in_(ids), RollupHourly.cls != "machine")
                .group_by(RollupHourly.send_id, RollupHourly.kind)
            ):
                agg[(int(sid), str(kind))] = int(uniq or 0)
    from newsletter.wechat.stats import all_issue_totals, wechat_only_issues

    send_issue = _send_issues(ids)
    wechat = all_issue_totals()
    out = []
    for r in reversed(sends):
        opens, clicks = agg.get((r.id, "open"), 0), agg.get((r.id, "click"), 0)
        w = wechat.get(send_issue.get(r.id, -1), {})
        out.append(
            {
                "send_id": r.id,
                "issue": r.number,
                "title": r.title,
                "planned": r.planned_count,
                "started_at": r.started_at.isoformat() if r.started_at else None,
                "channels": "email",
                "opens_unique": opens,
                "clicks_unique": clicks,
                "open_rate": round(opens / r.planned_count, 4) if r.planned_count else 0.0,
                "click_rate": round(clicks / r.planned_count, 4) if r.planned_count else 0.0,
                "wechat_reads": w.get("reads", 0),
                "wechat_readers": w.get("readers", 0),
                "wechat_shares": w.get("shares", 0),
            }
        )
    for row in wechat_only_issues(set(send_issue.values()))[-limit:]:  # issues sent only to WeChat
        day = str(row["sent_date"] or "")[:10]
        if (since and day < since.isoformat()) or (until and day > until.isoformat()):
            continue
        w = wechat.get(row["issue_id"], {})
        out.append(
            {
                "send_id": row["send_id"],
                "issue": row["issue"],
                "title": row["title"],
                "planned": 0,
                "started_at": row["sent_date"],
                "channels": "wechat",
                "opens_unique": 0,
                "clicks_unique": 0,
                "open_rate": None,
                "click_rate": None,
                "wechat_reads": w.get("reads", 0),
                "wechat_readers": w.get("readers", 0),
                "wechat_shares": w.get("shares", 0),
            }
        )
    out.sort(key=lambda r: str(r["started_at"] or ""))
    return out


def _send_issues(ids: list[int]) -> dict[int, int]:
    """send id → issue id."""
    if not ids:
        return {}
    with session_scope() as s:
        return {
            int(a): int(b)
            for a, b in s.execute(select(Send.id, Send.issue_id).where(Send.id.in_(ids)))
        }


def _csv_names(zh: bool) -> Callable[[str], str]:
    """Column and metric names: the English keys, or Chinese ones (``zh``)."""
    from newsletter.web.console.i18n import CSV_ZH

    if not zh:
        return lambda k: k
    return lambda k: (
        CSV_ZH.get(k) or ("公众号" + CSV_ZH.get(k[7:], k[7:]) if k.startswith("wechat_") else k)
    )


def _stats_rows(data: dict[str, Any], name: Callable[[str], str]) -> list[list[Any]]:
    """One send's figures as rows: metrics, opens per hour, clicks per link."""
    rows: list[list[Any]] = [[name("metric"), name("value")]]
    for k, v in data.items():
        if isinstance(v, (int, float, str)) or v is None:
            rows.append([name(k), "" if v is None else v])
    wx = data.get("wechat") or {}
    for k in ("reads", "readers", "shares"):  # the WeChat figures, as `newsletter stats` shows
        rows.append([name(f"wechat_{k}"), wx.get(k, 0)])
    rows += [[], [name("hour"), name("opens")]]
    rows += [[hour, n] for hour, n in data["opens_by_hour"]]
    rows += [[], [name("link_position"), name("url"), name("clicks"), name("unique")]]
    rows += [[ln["position"], ln["url"], ln["clicks"], ln["unique"]] for ln in data["links"]]
    return rows


def stats_csv(
    actor: Principal, send_id: int, request: Request | None = None, zh: bool = False
) -> bytes:
    rows = _stats_rows(stats(send_id), _csv_names(zh))
    buf = io.StringIO()
    w = csv_writer(buf)  # formula cells neutralised (OWASP)
    for row in rows:
        w.writerow(row)
    with session_scope() as s:
        record(s, actor, "stats.export", f"send:{send_id}", request)
    return "\ufeff".encode() + buf.getvalue().encode()


def stats_xlsx(
    actor: Principal, send_id: int, request: Request | None = None, zh: bool = False
) -> bytes:
    """The same figures as :func:`stats_csv` as an Excel workbook (text never a formula)."""
    body = xlsx_bytes(_stats_rows(stats(send_id), _csv_names(zh)), "统计" if zh else "stats")
    with session_scope() as s:
        record(s, actor, "stats.export", f"send:{send_id}", request, format="xlsx")
    return body


def xlsx_bytes(rows: list[list[Any]], title: str) -> bytes:
    """Rows → an .xlsx file; strings are neutralised like CSV cells and stored as text."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    from newsletter.core.safety.csvsafe import neutralise

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title)
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, str):
                cell = WriteOnlyCell(ws, value=neutralise(value))
                cell.data_type = "s"
            else:
                cell = WriteOnlyCell(ws, value=value)
            cells.append(cell)
        ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


class _Named:
    """A CSV writer that also writes header rows through a naming function."""

    def __init__(self, writer: Any, name: Callable[[str], str]) -> None:
        self.writer, self.name = writer, name

    def writerow(self, row: list[Any]) -> None:
        self.writer.writerow(row)

    def names(self, keys: list[str]) -> None:
        self.writer.writerow([self.name(k) for k in keys])


def trends_csv(actor: Principal, request: Request | None = None, zh: bool = False) -> bytes:
    rows = trends()
    buf = io.StringIO()
    w = _Named(csv_writer(buf), _csv_names(zh))  # formula cells neutralised (OWASP)
    cols = [
        "send_id",
        "issue",
        "title",
        "channels",
        "started_at",
        "planned",
        "opens_unique",
        "clicks_unique",
        "open_rate",
        "click_rate",
        "wechat_reads",
        "wechat_readers",
        "wechat_shares",
    ]
    w.names(cols)
    for r in rows:
        w.writerow(["" if r[c] is None else r[c] for c in cols])
    with session_scope() as s:
        record(s, actor, "stats.export", "trends", request)
    return "\ufeff".encode() + buf.getvalue().encode()
