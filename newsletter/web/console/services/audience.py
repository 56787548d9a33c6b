"""Console services for the audience: lists, subscribers, imports, exports, segments,
suppressions and bounces."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from sqlalchemy import exists, func, select

from newsletter.audience.segments import count as segment_count
from newsletter.audience.segments import validate as validate_segment
from newsletter.audience.service import get_list, suppress, unsuppress
from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound
from newsletter.models import (
    Delivery,
    MailingList,
    Publication,
    Segment,
    Send,
    Subscriber,
    Subscription,
    Suppression,
)
from newsletter.web.console.auth import Principal, record
from newsletter.web.console.services.common import ConsoleError

__all__ = [
    "BOUNCE_REASONS",
    "BULK_ACTIONS",
    "BULK_LIMIT",
    "VARIANTS",
    "add_suppression",
    "bounces",
    "bulk_subscribers",
    "count_search",
    "count_segment",
    "create_list",
    "delete_list",
    "export_list",
    "get_subscriber",
    "lists",
    "remove_suppression",
    "save_segment",
    "search_subscribers",
    "segments",
    "suppressions",
    "update_list",
    "update_subscriber",
]


def lists(counts: bool = True) -> list[dict[str, Any]]:
    """Lists; with member counts only where a page shows them (a count scans the list)."""
    with session_scope() as s:
        counts_by_list: dict[int, int] = {}
        if counts:
            counts_by_list = dict(
                s.execute(
                    select(Subscription.list_id, func.count())
                    .where(Subscription.status == "active")
                    .group_by(Subscription.list_id)
                ).all()
            )
        return [
            {
                "id": m.id,
                "name": m.name,
                "description": m.description,
                "double_opt_in": m.double_opt_in,
                "active": int(counts_by_list.get(m.id, 0)) if counts else None,
            }
            for m in s.scalars(select(MailingList).order_by(MailingList.name))
        ]


def _list_id(s: Any, list_ref: str | int) -> int:
    if isinstance(list_ref, int) or str(list_ref).isdigit():
        ml = s.get(MailingList, int(list_ref))
        if ml is None:
            raise NotFound(f"list {list_ref} does not exist / 列表不存在")
        return int(ml.id)
    return int(get_list(s, str(list_ref)).id)


#: The statuses a subscriber search can filter on (SUB_STATUS codes).
SEARCH_STATUSES = ("active", "unsubscribed", "unconfirmed", "bounced", "complained", "blocked")


def _status_filter(stmt: Any, status: str, list_id: int | None) -> Any:
    """Restrict a subscriber query to those a person would call ``status``."""

    def sub(*states: str) -> Any:
        cond = (Subscription.subscriber_id == Subscriber.id) & Subscription.status.in_(states)
        if list_id:
            cond = cond & (Subscription.list_id == list_id)
        return exists().where(cond)

    suppressed = select(Suppression.email)
    if status == "blocked":
        return stmt.where(Subscriber.status == "blocked")
    if status in ("bounced", "complained"):
        reason = "hard_bounce" if status == "bounced" else "complaint"
        return stmt.where(
            Subscriber.email.in_(select(Suppression.email).where(Suppression.reason == reason))
        )
    live = stmt.where(Subscriber.status == "active")
    if status == "active":
        return live.where(sub("active"), Subscriber.email.not_in(suppressed))
    if status == "unsubscribed":
        return live.where(sub("unsubscribed"), ~sub("active"))
    if status == "unconfirmed":
        return live.where(sub("unconfirmed", "pending"), ~sub("active"))
    return stmt


def _shown_status(row: Subscriber, states: set[str], reason: str | None) -> str:
    """What a person calls this subscriber: blocked, a bounce or complaint, else what their
    subscriptions (on the chosen list, or any) say."""
    if row.status != "active":
        return row.status
    if reason == "hard_bounce":
        return "bounced"
    if reason == "complaint":
        return "complained"
    if "active" in states or not states:
        return "active"
    if states & {"unconfirmed", "pending"}:
        return "unconfirmed"
    return "unsubscribed"


def search_subscribers(
    q: str = "", list_id: int | None = None, limit: int = 50, status: str = ""
) -> list[dict[str, Any]]:
    limit = max(1, min(limit, 200))
    with session_scope() as s:
        stmt = select(Subscriber).where(Subscriber.status != "erased")
        if q:
            # Prefix match on the address uses the unique index; names need a scan, so only
            # short queries with CJK characters search names.
            like = q.strip().lower().replace("%", r"\%").replace("_", r"\_")
            if re.search(r"[\u4e00-\u9fff]", q):
                stmt = stmt.where(Subscriber.name.like(f"%{like}%", escape="\\"))
            else:
                stmt = stmt.where(Subscriber.email.like(f"{like}%", escape="\\"))
        if list_id:
            stmt = stmt.join(
                Subscription,
                (Subscription.subscriber_id == Subscriber.id) & (Subscription.list_id == list_id),
            )
        if status in SEARCH_STATUSES:
            stmt = _status_filter(stmt, status, list_id)
        rows = s.scalars(stmt.order_by(Subscriber.id).limit(limit)).all()
        reasons = dict(
            s.execute(
                select(Suppression.email, Suppression.reason).where(
                    Suppression.email.in_([r.email for r in rows])
                )
            ).all()
        )
        states: dict[int, set[str]] = {}
        subs = select(Subscription.subscriber_id, Subscription.status).where(
            Subscription.subscriber_id.in_([r.id for r in rows])
        )
        if list_id:
            subs = subs.where(Subscription.list_id == list_id)
        for sid, st in s.execute(subs).all():
            states.setdefault(sid, set()).add(st)
        return [
            {
                "id": r.id,
                "email": r.email,
                "name": r.name,
                "variant": r.variant,
                "status": _shown_status(r, states.get(r.id, set()), reasons.get(r.email)),
                "suppressed": r.email in reasons,
                "created_at": r.created_at.isoformat(),
            }
            for r in rows
        ]


def count_search(q: str = "", list_id: int | None = None) -> int:
    """How many subscribers a search covers (what a bulk job over it would act on)."""
    from newsletter.audience import bulk

    with session_scope() as s:
        return bulk.count(s, bulk.selection(s, q=q, list_id=list_id))


def export_list(actor: Principal, list_id: int, request: Request | None = None) -> Iterator[bytes]:
    from newsletter.audience.export import iter_csv

    with session_scope() as s:
        ml = s.get(MailingList, list_id)
        if ml is None:
            raise NotFound(f"list {list_id} does not exist / 列表不存在")
        record(s, actor, "subscribers.export", ml.name, request, list_id=list_id)
    return iter_csv(list_id)


def segments() -> list[dict[str, Any]]:
    with session_scope() as s:
        return [
            {"id": g.id, "name": g.name, "definition": g.definition}
            for g in s.scalars(select(Segment).order_by(Segment.name))
        ]


def count_segment(definition: Any, list_id: int | None = None) -> int:
    with session_scope() as s:
        return segment_count(s, definition or None, list_id or None)


def save_segment(
    actor: Principal, name: str, definition: Any, request: Request | None = None
) -> dict[str, Any]:
    name = name.strip()
    if not name:
        raise ConsoleError("name the segment / 请填写分群名称")
    validate_segment(definition)
    with session_scope() as s:
        seg = s.scalar(select(Segment).where(Segment.name == name))
        if seg is None:
            seg = Segment(name=name, definition=definition)
            s.add(seg)
        else:
            seg.definition = definition
        s.flush()
        record(s, actor, "segment.save", name, request, definition=definition)
        return {"id": seg.id, "name": seg.name, "definition": seg.definition}


def suppressions(q: str = "", limit: int = 100) -> list[dict[str, Any]]:
    with session_scope() as s:
        stmt = select(Suppression)
        if q:
            stmt = stmt.where(Suppression.email.like(q.strip().lower().replace("%", "") + "%"))
        return [
            {
                "email": r.email,
                "reason": r.reason,
                "note": r.note,
                "created_at": r.created_at.isoformat(),
            }
            for r in s.scalars(stmt.order_by(Suppression.id.desc()).limit(max(1, min(limit, 500))))
        ]


def add_suppression(
    actor: Principal, email: str, note: str, request: Request | None = None
) -> bool:
    with session_scope() as s:
        added = suppress(s, email, "manual", note=note[:1000])
        record(s, actor, "suppression.add", email, request, note=note)
        return added


def remove_suppression(actor: Principal, email: str, request: Request | None = None) -> bool:
    with session_scope() as s:
        removed = unsuppress(s, email)
        record(s, actor, "suppression.remove", email, request)
        return removed


VARIANTS = ("zh-Hans", "zh-Hant")


BULK_ACTIONS = ("unsubscribe", "move", "block", "delete")


BULK_LIMIT = 1000


def _list_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ConsoleError("列表名称不能为空 / the list needs a name")
    if len(name) > 200:
        raise ConsoleError("列表名称最多 200 个字符 / list name: at most 200 characters")
    return name


def create_list(
    actor: Principal,
    name: str,
    description: str = "",
    double_opt_in: bool = True,
    request: Request | None = None,
) -> dict[str, Any]:
    name = _list_name(name)
    with session_scope() as s:
        if s.scalar(select(MailingList.id).where(MailingList.name == name)) is not None:
            raise ConsoleError(f"列表“{name}”已存在 / list {name!r} already exists")
        ml = MailingList(
            name=name, description=description.strip()[:1000], double_opt_in=double_opt_in
        )
        s.add(ml)
        s.flush()
        record(
            s,
            actor,
            "list.create",
            f"list:{ml.id}",
            request,
            name=name,
            double_opt_in=double_opt_in,
        )
        return {"id": ml.id, "name": ml.name}


def update_list(
    actor: Principal,
    list_id: int,
    name: str,
    description: str = "",
    double_opt_in: bool = True,
    request: Request | None = None,
) -> dict[str, Any]:
    name = _list_name(name)
    with session_scope() as s:
        ml = s.get(MailingList, list_id)
        if ml is None:
            raise NotFound(f"列表 {list_id} 不存在 / list {list_id} does not exist")
        other = s.scalar(
            select(MailingList.id).where(MailingList.name == name, MailingList.id != list_id)
        )
        if other is not None:
            raise ConsoleError(f"列表“{name}”已存在 / list {name!r} already exists")
        before = ml.name
        ml.name, ml.description, ml.double_opt_in = name, description.strip()[:1000], double_opt_in
        record(
            s,
            actor,
            "list.update",
            f"list:{list_id}",
            request,
            name=name,
            before=before,
            double_opt_in=double_opt_in,
        )
        return {"id": ml.id, "name": ml.name}


def delete_list(actor: Principal, list_id: int, request: Request | None = None) -> str:
    with session_scope() as s:
        ml = s.get(MailingList, list_id)
        if ml is None:
            raise NotFound(f"列表 {list_id} 不存在 / list {list_id} does not exist")
        if s.scalar(select(func.count()).select_from(Send).where(Send.list_id == list_id)):
            raise ConsoleError(
                "该列表已有发送任务，不能删除 / the list has sends; it cannot be deleted"
            )
        if s.scalar(
            select(func.count())
            .select_from(Publication)
            .where(Publication.default_list_id == list_id)
        ):
            raise ConsoleError(
                "该列表是默认列表，不能删除 / it is the default list; choose another first"
            )
        members = (
            s.scalar(
                select(func.count())
                .select_from(Subscription)
                .where(Subscription.list_id == list_id)
            )
            or 0
        )
        name = ml.name
        s.delete(ml)  # subscriptions go with it (ON DELETE CASCADE); subscribers stay
        record(
            s,
            actor,
            "list.delete",
            f"list:{list_id}",
            request,
            name=name,
            subscriptions=int(members),
        )
        return name


def get_subscriber(subscriber_id: int) -> dict[str, Any]:
    with session_scope() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None or sub.status == "erased":
            raise NotFound(f"订阅者 {subscriber_id} 不存在 / subscriber does not exist")
        subs = s.execute(
            select(MailingList.name, Subscription.status)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscription.subscriber_id == subscriber_id)
            .order_by(MailingList.name)
        ).all()
        return {
            "id": sub.id,
            "email": sub.email,
            "name": sub.name,
            "variant": sub.variant,
            "status": sub.status,
            "created_at": sub.created_at.isoformat(),
            "subscriptions": [{"list": n, "status": st} for n, st in subs],
        }


def update_subscriber(
    actor: Principal, subscriber_id: int, name: str, variant: str, request: Request | None = None
) -> None:
    if variant not in VARIANTS:
        raise ConsoleError("版本只能是 zh-Hans 或 zh-Hant / variant: zh-Hans or zh-Hant")
    name = " ".join((name or "").split())[:200]
    with session_scope() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None or sub.status == "erased":
            raise NotFound(f"订阅者 {subscriber_id} 不存在 / subscriber does not exist")
        before = {"name": sub.name, "variant": sub.variant}
        sub.name, sub.variant = name, variant
        record(
            s,
            actor,
            "subscriber.update",
            f"subscriber:{subscriber_id}",
            request,
            before=before,
            after={"name": name, "variant": variant},
        )


def bulk_subscribers(
    actor: Principal,
    ids: list[int],
    action: str,
    *,
    from_list: int | None = None,
    to_list: int | None = None,
    request: Request | None = None,
) -> int:
    """Apply ``action`` to the ticked subscribers (at most :data:`BULK_LIMIT`, at once);
    returns how many changed.  A whole search or segment runs as a job instead
    (:func:`~.jobs.start_bulk_job`).

    unsubscribe: from ``from_list`` (the search's list) or, without one, from everything
    (which also suppresses the address); move: into ``to_list`` (active), leaving
    ``from_list``; block: the subscriber is blocked and suppressed (manual); delete: erased
    (PIPL/GDPR: only a hashed suppression remains).  One audit entry names them all.
    """
    from newsletter.audience import bulk

    if action not in BULK_ACTIONS:
        raise ConsoleError("未知的批量操作 / unknown bulk action")
    ids = sorted({int(i) for i in ids})
    if not ids:
        raise ConsoleError("请先勾选订阅者 / tick at least one subscriber")
    if len(ids) > BULK_LIMIT:
        raise ConsoleError(f"一次最多 {BULK_LIMIT} 人 / at most {BULK_LIMIT} at a time")
    with session_scope() as s:
        bulk.check(s, action, from_list, to_list)
        rows = bulk.count(s, bulk.selection(s, ids=ids))
        changed = bulk.apply(
            s, ids, action, from_list=from_list, to_list=to_list, actor=actor.username
        )
        record(
            s,
            actor,
            "subscribers.bulk",
            f"{action}:{rows}",
            request,
            bulk=action,
            ids=ids[:200],
            count=rows,
            changed=changed,
            from_list=from_list,
            to_list=to_list,
        )
    return changed


BOUNCE_REASONS = ("hard_bounce", "complaint")


def bounces(kind: str = "", page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """Recent hard bounces and complaints (newest first) with the receiver's reason and the
    send they came from, and the total."""

    reasons = (kind,) if kind in BOUNCE_REASONS else BOUNCE_REASONS
    page = max(1, min(page, 10_000))
    with session_scope() as s:
        total = (
            s.scalar(
                select(func.count()).select_from(Suppression).where(Suppression.reason.in_(reasons))
            )
            or 0
        )
        rows = s.execute(
            select(Suppression, Delivery.send_id)
            .outerjoin(Delivery, Delivery.id == Suppression.delivery_id)
            .where(Suppression.reason.in_(reasons))
            .order_by(Suppression.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        return {
            "total": int(total),
            "page": page,
            "per_page": per_page,
            "rows": [
                {
                    "email": r.email,
                    "reason": r.reason,
                    "note": r.note,
                    "send_id": send_id,
                    "created_at": r.created_at.isoformat(),
                }
                for r, send_id in rows
            ],
        }
