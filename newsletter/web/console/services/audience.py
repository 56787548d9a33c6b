"""Console services for the audience's lists and segments: who a send can reach; a list's
members exported.  Subscribers are :mod:`.subscribers`, suppressions and bounces
:mod:`.suppressions`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Request
from sqlalchemy import func, select

from newsletter.audience.segments import count as segment_count
from newsletter.audience.segments import validate as validate_segment
from newsletter.audience.service import get_list
from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound
from newsletter.models import (
    MailingList,
    Publication,
    Segment,
    Send,
    Subscription,
)
from newsletter.web.console.auth import Principal, record
from newsletter.web.console.services.common import ConsoleError

__all__ = [
    "count_segment",
    "create_list",
    "delete_list",
    "export_list",
    "lists",
    "save_segment",
    "segments",
    "update_list",
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


def export_list(actor: Principal, list_id: int, request: Request | None = None) -> Iterator[bytes]:
    from newsletter.audience.export import iter_csv

    with session_scope() as s:
        ml = s.get(MailingList, list_id)
        if ml is None:
            raise NotFound(f"list {list_id} does not exist / 列表不存在")
        record(s, actor, "subscribers.export", ml.name, request, list_id=list_id)
    return iter_csv(list_id)


def export_list_xlsx(
    actor: Principal, list_id: int, lang: str = "zh", request: Request | None = None
) -> bytes:
    """The list's subscribers as an Excel workbook, the same rows as the CSV, headers in
    the console's language; every text cell stored as text, formulas neutralised."""
    from newsletter.audience.export import HEADER, export_rows
    from newsletter.web.console.i18n import EXPORT_COLUMNS_ZH
    from newsletter.web.console.services.reports import xlsx_bytes

    with session_scope() as s:
        ml = s.get(MailingList, list_id)
        if ml is None:
            raise NotFound(f"list {list_id} does not exist / 列表不存在")
        record(s, actor, "subscribers.export", ml.name, request, list_id=list_id, format="xlsx")
        name = ml.name
    head = HEADER if lang == "en" else [EXPORT_COLUMNS_ZH.get(h, h) for h in HEADER]
    if lang == "zh-Hant":
        from newsletter.content.variants import convert_text

        head = [convert_text(h) for h in head]
    return xlsx_bytes([head, *export_rows(list_id)], (name or "list")[:31])


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
