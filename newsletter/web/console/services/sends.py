"""Console services for sends: create, list, start/pause/resume/cancel, progress, search."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from fastapi import Request
from sqlalchemy import func, select

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError, NotFound, ServiceUnavailable, StateError
from newsletter.issues.store import get_issue, lock_issue
from newsletter.models import Delivery, Issue, MailingList, Segment, Send, utcnow
from newsletter.web.console.auth import Principal, record
from newsletter.web.console.services.audience import _list_id
from newsletter.web.console.services.common import ConsoleError

__all__ = [
    "control_send",
    "create_send",
    "list_sends",
    "progress",
    "search_sends",
    "send_now_facts",
    "send_row",
]


def create_send(
    actor: Principal,
    issue_id: int,
    list_ref: str | int,
    *,
    variant_rule: str = "preference",
    segment_id: int | None = None,
    at: dt.datetime | None = None,
    schedule: bool = False,
    request: Request | None = None,
) -> dict[str, Any]:
    """A draft send (to start now), or a scheduled one (``schedule``: at ``at`` or the next slot)."""
    from newsletter.schedule.slots import schedule_send

    if variant_rule not in ("preference", "zh-Hans", "zh-Hant"):
        raise ConsoleError("variant must be preference, zh-Hans or zh-Hant")
    with session_scope() as s:
        try:  # ids in the request body that name nothing are a data error (422), not a 404
            issue = get_issue(s, issue_id)
            list_id = _list_id(s, list_ref)
        except NotFound as exc:
            raise ConsoleError(str(exc)) from exc
        lock_issue(s, issue)  # not while the issue is being moved or sent back
        if segment_id is not None and s.get(Segment, segment_id) is None:
            raise ConsoleError(f"segment {segment_id} does not exist / 分群不存在")
        if schedule:
            send = schedule_send(
                s, issue, list_id=list_id, at=at, variant_rule=variant_rule, actor=actor.username
            )
            if segment_id:
                send.segment_id = segment_id
        else:
            if issue.status not in ("approved", "scheduled", "sent"):
                raise StateError(
                    f"issue {issue.number} is {issue.status}; approve it first / 请先审核通过"
                )
            send = Send(
                publication_id=issue.publication_id,
                issue_id=issue.id,
                list_id=list_id,
                segment_id=segment_id or None,
                channel="email",
                variant_rule=variant_rule,
                state="draft",
                created_by=actor.username,
            )
            s.add(send)
            s.flush()
        record(
            s,
            actor,
            "send.create",
            f"send:{send.id}",
            request,
            issue=issue.number,
            list_id=list_id,
            scheduled=schedule,
            slot=send.slot,
        )
        return send_row(s, send)


def send_row(s: Any, send: Send) -> dict[str, Any]:
    from newsletter.models import Publication

    issue = s.get(Issue, send.issue_id)
    ml = s.get(MailingList, send.list_id) if send.list_id else None
    pub = s.get(Publication, send.publication_id)
    return {
        "id": send.id,
        "zone": pub.timezone if pub is not None else "Asia/Shanghai",
        "issue_id": send.issue_id,
        "issue": issue.number if issue else None,
        "title": issue.title if issue else "",
        "channel": send.channel,
        "list": ml.name if ml else None,
        "state": send.state,
        "slot": send.slot,
        "scheduled_at": send.scheduled_at.isoformat() if send.scheduled_at else None,
        "started_at": send.started_at.isoformat() if send.started_at else None,
        "finished_at": send.finished_at.isoformat() if send.finished_at else None,
        "planned": send.planned_count,
        "excluded": send.excluded_count,
        "error": send.error,
        "created_by": send.created_by,
    }


def list_sends(limit: int = 100, issue_id: int | None = None) -> list[dict[str, Any]]:
    with session_scope() as s:
        q = select(Send).where(Send.kind == "issue").order_by(Send.id.desc()).limit(limit)
        if issue_id is not None:
            q = q.where(Send.issue_id == issue_id)
        return [send_row(s, sd) for sd in s.scalars(q)]


_runners: dict[int, threading.Thread] = {}


def _run_inline(send_id: int) -> None:
    from newsletter.delivery.run import drive_inline

    t = _runners.get(send_id)
    if t is not None and t.is_alive():
        return
    t = threading.Thread(
        target=_drive, args=(send_id, drive_inline), daemon=True, name=f"send-{send_id}"
    )
    _runners[send_id] = t
    t.start()


def _drive(send_id: int, drive: Any) -> None:
    import logging

    try:
        drive(send_id)
    except Exception:  # the send's state says what happened; the thread must not die loudly
        logging.getLogger(__name__).exception("send %s: in-process run failed", send_id)


def control_send(
    actor: Principal, send_id: int, action: str, request: Request | None = None
) -> dict[str, Any]:
    """start | pause | resume | cancel."""
    from newsletter.delivery.sends import transition

    if action not in ("start", "pause", "resume", "cancel"):
        raise ConsoleError(f"unknown action {action!r}")
    cfg = get_settings()
    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None:
            raise NotFound(f"send {send_id} does not exist / 发送任务不存在")
        if action == "start":
            if send.state not in ("draft", "scheduled"):
                raise StateError(f"send {send_id} is {send.state}; cannot start / 无法开始")
            issue = s.get(Issue, send.issue_id)
            if issue is None or issue.status not in ("approved", "scheduled", "sent"):
                raise StateError("the issue is not approved / 期刊尚未审核通过")
        else:
            transition(s, send_id, action)
            record(s, actor, f"send.{action}", f"send:{send_id}", request)
    if action == "start" or action == "resume":
        if cfg.embedded:
            _run_inline(send_id)
        else:
            from newsletter.core.dispatch import dispatcher

            try:
                if action == "start":
                    dispatcher().start_send(send_id)
                else:
                    dispatcher().run_batches(send_id, cfg.send_parallelism)
            except NewsletterError:
                raise
            except Exception as exc:  # broker down: say so; nothing was started
                raise ServiceUnavailable(
                    f"the message broker is unreachable; send {send_id} was not {action}ed "
                    "/ 无法连接消息代理，未能开始发送"
                ) from exc
    if action == "start":
        # Audited only once it really started (queued to the workers or run here).
        with session_scope() as s:
            record(s, actor, "send.start", f"send:{send_id}", request)
    return progress(send_id)


def _reach(send: Send) -> int | None:
    """How many a send not yet planned would reach now (after unsubscribes, suppressions
    and those who already received the issue)."""
    from newsletter.delivery.sends import audience

    if send.list_id is None or send.channel != "email":
        return None
    with session_scope() as s:
        count, _already = audience(
            s, issue_id=send.issue_id, list_id=send.list_id, segment_id=send.segment_id
        )
        return int(count)


def _relay_counts(send_id: int) -> dict[str, int]:
    from newsletter.delivery.relays import relay_counts

    with session_scope() as s:
        return dict(relay_counts(s, send_id))


def progress(send_id: int) -> dict[str, Any]:
    from newsletter.delivery.sends import state_counts

    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None:
            raise NotFound(f"send {send_id} does not exist / 发送任务不存在")
        counts = state_counts(s, send_id)
        row = send_row(s, send)
        wx_id = (
            s.scalar(
                select(Send.id)
                .where(Send.issue_id == send.issue_id, Send.channel == "wechat")
                .order_by(Send.id.desc())
            )
            if send.channel == "email"
            else send.id
        )
    done = counts["sent"] + counts["bounced"] + counts["failed"] + counts["skipped"]
    total = sum(counts.values())
    remaining = counts["queued"] + counts["sending"] + counts["deferred"]
    if total:
        pct = round(100.0 * done / total, 1)
    else:
        pct = 100.0 if row["state"] == "finished" else 0.0
    elapsed = None
    rate = None
    if send.started_at:
        end = send.finished_at or utcnow()
        elapsed = max((end - send.started_at).total_seconds(), 0.001)
        rate = round(done / elapsed, 2)
    wechat: dict[str, Any] | None = None
    if wx_id is not None:
        try:
            from newsletter.wechat.publisher import status as wx_status

            wechat = wx_status(int(wx_id))
        except Exception as exc:  # WeChat state is informative; never break the progress view
            wechat = {"state": "unknown", "error": str(exc)}
    # "pausing" until every worker has let go: paused or cancelled, yet a message is
    # still marked sending (at most one marked group per worker process).
    pausing = row["state"] in ("paused", "cancelled") and counts["sending"] > 0
    with session_scope() as s:
        at_risk = s.scalar(
            select(func.count()).where(Delivery.send_id == send_id, Delivery.at_risk.is_(True))
        )
    return {
        **row,
        "counts": counts,
        "done": done,
        "total": total,
        "remaining": remaining,
        "percent": pct,
        "rate_per_second": rate,
        "elapsed_seconds": elapsed,
        "pausing": pausing,
        "at_risk": int(at_risk or 0),
        "error": send.error,
        "already_received": send.already_received,
        "wechat": wechat,
        "relays": _relay_counts(send_id),
        "reach": _reach(send) if row["state"] in ("draft", "scheduled") and not total else None,
        "at": utcnow().isoformat(),
    }


def send_now_facts(issue_id: int, list_id: int, segment_id: str, variant: str) -> dict[str, Any]:
    """What "send now" would do: the issue, the audience and its count, for the confirmation."""
    from newsletter.delivery.sends import audience
    from newsletter.models import Segment

    seg = int(segment_id) if segment_id.isdigit() else None
    with session_scope() as s:
        issue = get_issue(s, issue_id)
        ml = s.get(MailingList, list_id)
        if ml is None:
            raise ConsoleError("the list does not exist / 列表不存在")
        segment = s.get(Segment, seg) if seg is not None else None
        count, already = audience(s, issue_id=issue.id, list_id=ml.id, segment_id=seg)
        return {
            "issue_id": issue.id,
            "number": issue.number,
            "title": issue.title,
            "status": issue.status,
            "list_id": ml.id,
            "list_name": ml.name,
            "segment_id": seg,
            "segment_name": segment.name if segment else None,
            "variant": variant,
            "count": count,
            "already": already,
        }


def search_sends(q: str = "", state: str = "", page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """The sends list with a search (issue number, ``#47``, or words of the title), a state
    filter, paging and the total that matched."""
    q = q.strip().lstrip("#")[:100]
    page = max(1, min(page, 10_000))
    with session_scope() as s:
        stmt = select(Send).where(Send.kind == "issue")  # welcome steps: on their list
        if q:
            if q.isdigit() and len(q) < 10:
                stmt = stmt.join(Issue, Issue.id == Send.issue_id).where(
                    (Issue.number == int(q)) | (Send.id == int(q))
                )
            else:
                like = q.replace("\\", "").replace("%", r"\%").replace("_", r"\_")
                stmt = stmt.join(Issue, Issue.id == Send.issue_id).where(
                    Issue.title.like(f"%{like}%", escape="\\")
                )
        if state:
            stmt = stmt.where(Send.state == state)
        total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = s.scalars(
            stmt.order_by(Send.id.desc()).limit(per_page).offset((page - 1) * per_page)
        ).all()
        return {
            "total": int(total),
            "page": page,
            "per_page": per_page,
            "pages": max(1, -(-int(total) // per_page)),
            "rows": [send_row(s, sd) for sd in rows],
        }


def scheduled_time(issue_id: int, at: dt.datetime | None) -> str:
    """When a scheduled send would go out, in the publication's zone with the zone named
    (the next weekly slot when no time is given)."""
    from newsletter.core import clock
    from newsletter.models import Publication
    from newsletter.schedule.slots import next_slot, parse_time, zone
    from newsletter.web.console.services.issues import zone_label

    with session_scope() as s:
        issue = get_issue(s, issue_id)
        pub = s.get(Publication, issue.publication_id)
        tz = pub.timezone if pub is not None else "Asia/Shanghai"
        if at is None:
            if pub is None or not (pub.schedule_weekday and pub.schedule_time):
                from newsletter.core.catalogue import coded

                raise coded(ConsoleError, "schedule.no_slot")
            at = next_slot(pub.schedule_weekday, parse_time(pub.schedule_time), tz, clock.now())
        local = at.astimezone(zone(tz))
        return f"{local:%Y-%m-%d %H:%M} {zone_label(tz)}"
