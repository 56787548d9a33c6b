"""Segments: safe audience filters evaluated in the database.

A segment is a JSON document, never SQL.  Its grammar:

```
{"all": [COND, ...]} | {"any": [COND, ...]} | {"not": COND} | CONDITION
CONDITION:
  {"attr": "city", "op": "eq"|"ne"|"in"|"contains"|"exists", "value": ...}
  {"list": "周报订阅"}                         member (active) of a list
  {"variant": "zh-Hant"}
  {"opened_in_last_sends": N}  / {"clicked_in_last_sends": N}
  {"not_opened_in_last_sends": N}
  {"bounced": true}                         has a bounced delivery
  {"created_after": "2026-01-01"}
```

:func:`compile_segment` turns it into a SQLAlchemy boolean expression over
``Subscriber``; values are always bound parameters, attribute names are
checked against a safe pattern, so no user input ever becomes SQL text.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select, true
from sqlalchemy.orm import Session

from newsletter.core.errors import NewsletterError
from newsletter.models import Delivery, MailingList, Send, Subscriber, Subscription

__all__ = ["SegmentError", "compile_segment", "count", "validate"]

_ATTR = re.compile(r"^[\w\u4e00-\u9fff .-]{1,64}$")


class SegmentError(NewsletterError):
    """A segment definition is malformed; the message names the part."""


def _recent_sends(n: int) -> Any:
    if not isinstance(n, int) or not 1 <= n <= 100:
        raise SegmentError(f"N must be an integer between 1 and 100, got {n!r}")
    return (
        select(Send.id)
        .where(
            Send.channel == "email",
            Send.kind == "issue",  # a welcome step is not one of the recent sends
            Send.state.in_(("sending", "finished", "paused")),
        )
        .order_by(Send.id.desc())
        .limit(n)
        .scalar_subquery()
    )


def _activity(column: Any, n: int) -> ColumnElement[bool]:
    return exists().where(
        Delivery.subscriber_id == Subscriber.id,
        Delivery.send_id.in_(_recent_sends(n)),
        column.is_not(None),
    )


#: Limits that keep a segment a filter, not a denial of service.
MAX_DEPTH = 16
MAX_CONDITIONS = 200
MAX_IN_VALUES = 1000
MAX_VALUE_CHARS = 1000


def _check_size(defn: Any) -> None:
    """Depth, number of conditions and list sizes, checked without recursion."""
    stack: list[tuple[Any, int, str]] = [(defn, 1, "$")]
    nodes = 0
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            raise SegmentError(f"{path}: nested deeper than {MAX_DEPTH} levels / 分群嵌套过深")
        if isinstance(node, dict):
            nodes += 1
            if nodes > MAX_CONDITIONS:
                raise SegmentError(f"more than {MAX_CONDITIONS} conditions / 分群条件过多")
            for k, v in node.items():
                stack.append((v, depth + 1, f"{path}.{k}"))
        elif isinstance(node, list):
            if len(node) > MAX_IN_VALUES:
                raise SegmentError(
                    f"{path}: {len(node)} values, at most {MAX_IN_VALUES} / 列表值过多"
                )
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(node))
        elif isinstance(node, str) and len(node) > MAX_VALUE_CHARS:
            raise SegmentError(f"{path}: value longer than {MAX_VALUE_CHARS} characters")


def compile_segment(defn: Any, path: str = "$") -> ColumnElement[bool]:
    if path == "$":
        _check_size(defn)
    if not isinstance(defn, dict) or len(defn) == 0:
        raise SegmentError(f"{path}: expected an object with one condition")
    if "all" in defn or "any" in defn:
        key = "all" if "all" in defn else "any"
        parts = defn[key]
        if not isinstance(parts, list) or not parts:
            raise SegmentError(f"{path}.{key}: expected a non-empty list")
        exprs = [compile_segment(p, f"{path}.{key}[{i}]") for i, p in enumerate(parts)]
        return and_(*exprs) if key == "all" else or_(*exprs)
    if "not" in defn:
        return not_(compile_segment(defn["not"], f"{path}.not"))
    if "attr" in defn:
        name = defn["attr"]
        if not isinstance(name, str) or not _ATTR.match(name):
            raise SegmentError(f"{path}.attr: bad attribute name {name!r}")
        op = defn.get("op", "eq")
        value = defn.get("value")
        col = Subscriber.attributes[name].as_string()
        if op == "eq":
            return col == str(value)
        if op == "ne":
            return or_(col.is_(None), col != str(value))
        if op == "in":
            if not isinstance(value, list) or not value:
                raise SegmentError(f"{path}.value: 'in' needs a non-empty list")
            return col.in_([str(v) for v in value])
        if op == "contains":
            return col.contains(str(value))
        if op == "exists":
            return col.is_not(None)
        raise SegmentError(f"{path}.op: unknown operator {op!r}")
    if "list" in defn:
        return exists().where(
            Subscription.subscriber_id == Subscriber.id,
            Subscription.status == "active",
            Subscription.list_id
            == select(MailingList.id)
            .where(MailingList.name == str(defn["list"]))
            .scalar_subquery(),
        )
    if "variant" in defn:
        if defn["variant"] not in ("zh-Hans", "zh-Hant"):
            raise SegmentError(f"{path}.variant: expected zh-Hans or zh-Hant")
        return Subscriber.variant == defn["variant"]
    if "opened_in_last_sends" in defn:
        return _activity(Delivery.first_open_at, defn["opened_in_last_sends"])
    if "not_opened_in_last_sends" in defn:
        return not_(_activity(Delivery.first_open_at, defn["not_opened_in_last_sends"]))
    if "clicked_in_last_sends" in defn:
        return _activity(Delivery.first_click_at, defn["clicked_in_last_sends"])
    if "bounced" in defn:
        has = exists().where(Delivery.subscriber_id == Subscriber.id, Delivery.state == "bounced")
        return has if defn["bounced"] else not_(has)
    if "created_after" in defn:
        try:
            when = dt.datetime.fromisoformat(str(defn["created_after"]))
        except ValueError as exc:
            raise SegmentError(f"{path}.created_after: not an ISO date") from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return Subscriber.created_at >= when
    raise SegmentError(f"{path}: unknown condition {sorted(defn)!r}")


def validate(defn: Any) -> None:
    compile_segment(defn)


def count(session: Session, defn: Any | None, list_id: int | None = None) -> int:
    """How many active subscribers (of ``list_id``, if given) match ``defn``."""
    q = select(func.count()).select_from(Subscriber).where(Subscriber.status == "active")
    q = q.where(compile_segment(defn) if defn else true())
    if list_id is not None:
        q = q.where(
            exists().where(
                Subscription.subscriber_id == Subscriber.id,
                Subscription.list_id == list_id,
                Subscription.status == "active",
            )
        )
    return session.scalar(q) or 0
