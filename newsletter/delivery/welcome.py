"""A list's welcome series: zero to five steps, each an issue-like source and a delay.

A step's content is a hidden issue (``issue.kind = 'welcome'``, numbered below zero, so
it is never listed, archived or put on a weekly slot) rendered by the same renderers in
both scripts.  Its deliveries are rows of its own standing send (``send.kind =
'welcome'``, always ``sending``): the batch, lease, relay, suppression, bounce and
warm-up machinery of weekly sends carries them, and ``UNIQUE (send_id, subscriber_id)``
sends a step at most once to a subscriber.  :mod:`.welcome_due` finds the due ones.

Editing a step changes what later subscribers get; who already received it does not get
it again.  Deleting a step keeps its send and deliveries (the statistics stay true).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.content.lint import LintMessage
from newsletter.core.audit import audit
from newsletter.core.catalogue import coded
from newsletter.core.errors import IssueFormatError, NotFound, StateError
from newsletter.issues.store import context_for, render_issue
from newsletter.models import (
    Delivery,
    Issue,
    MailingList,
    Publication,
    Send,
    WelcomeStep,
    utcnow,
)

__all__ = [
    "MAX_STEPS",
    "TEMPLATE",
    "Linter",
    "add_step",
    "content_lint",
    "delay_text",
    "delete_step",
    "get_step",
    "lint_step",
    "move_step",
    "parse_delay",
    "step_row",
    "step_stats",
    "steps",
    "update_step",
]

MAX_STEPS = 5
#: The longest delay a step may have (a year): later than that is not a welcome.
MAX_DELAY = 365 * 86400
#: Lint codes that do not apply to a welcome step (it has no issue number).
NOT_FOR_WELCOME = frozenset({"number-missing"})

TEMPLATE = """---
title: 欢迎订阅
preheader: 感谢您的订阅，这里是接下来会收到的内容。
---

感谢您订阅本刊。每周一期，您会收到政策要闻与解读。

## 从这里开始

- [往期归档](https://example.org/archive/)
"""

_UNITS = {
    "秒": 1, "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "分": 60, "分钟": 60, "分鐘": 60, "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "时": 3600, "小时": 3600, "小時": 3600, "h": 3600, "hour": 3600, "hours": 3600,
    "天": 86400, "日": 86400, "d": 86400, "day": 86400, "days": 86400,
    "周": 604800, "週": 604800, "星期": 604800, "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_NOW = frozenset({"", "0", "立即", "马上", "立刻", "now", "immediately", "at once"})
_DELAY = re.compile(r"^(?:after\s+|in\s+)?(\d{1,6})\s*([^\d\s]+?)\s*(?:后|後|later)?$")


def parse_delay(text: str | int) -> int:
    """Seconds from "立即", "2 天后", "3 小时后", "1 周后", "2d", "12h" or a number of seconds."""
    if isinstance(text, int) and not isinstance(text, bool):
        seconds = text
    else:
        raw = str(text).strip().lower()
        if raw in _NOW:
            return 0
        if raw.isdigit():
            seconds = int(raw)
        else:
            m = _DELAY.match(raw)
            unit = _UNITS.get(m.group(2)) if m else None
            if m is None or unit is None:
                raise coded(StateError, "welcome.bad_delay", delay=str(text)[:40])
            seconds = int(m.group(1)) * unit
    if not 0 <= seconds <= MAX_DELAY:
        raise coded(StateError, "welcome.bad_delay", delay=str(text)[:40])
    return seconds


def delay_text(seconds: int) -> dict[str, str]:
    """{"zh": "2 天后", "en": "after 2 days"} (the largest whole unit)."""
    if seconds <= 0:
        return {"zh": "立即", "en": "immediately"}
    for size, zh, en in ((604800, "周", "week"), (86400, "天", "day"), (3600, "小时", "hour"),
                         (60, "分钟", "minute"), (1, "秒", "second")):  # fmt: skip
        if seconds % size == 0:
            n = seconds // size
            return {"zh": f"{n} {zh}后", "en": f"after {n} {en}{'s' if n != 1 else ''}"}
    return {"zh": f"{seconds} 秒后", "en": f"after {seconds} seconds"}  # pragma: no cover


def _list(session: Session, list_id: int, *, lock: bool = False) -> MailingList:
    """The list, or ``welcome.list_not_found``. ``lock``: hold its row until the end of the
    transaction. Every change to a series takes this lock first, so two editors at once
    are served one after the other (positions are unique per list and renumbered in two
    passes; without it, two adds collide on a position and two moves deadlock)."""
    if lock:
        ml = session.scalar(select(MailingList).where(MailingList.id == list_id).with_for_update())
    else:
        ml = session.get(MailingList, list_id)
    if ml is None:
        raise coded(NotFound, "welcome.list_not_found", list_id=list_id)
    return ml


def _publication(session: Session, list_id: int) -> Publication:
    """The publication that sends to ``list_id`` (the one whose default list it is, else
    the first); its sender identity and footer go on the welcome mail."""
    pub = session.scalar(
        select(Publication).where(Publication.default_list_id == list_id).order_by(Publication.id)
    ) or session.scalar(select(Publication).order_by(Publication.id))
    if pub is None:
        raise coded(StateError, "welcome.no_publication")
    return pub


#: A lint: (source, render context) -> messages. The console passes the issues' full lint
#: (``reports.lint.full_lint``: size budgets and e-mail CSS too), which this layer may
#: not import; the default is the content lint (structure, links, images).
Linter = Callable[[str, Any], list[LintMessage]]


def content_lint(source: str, _ctx: Any) -> list[LintMessage]:
    from newsletter.content.lint import lint_source

    return lint_source(source)


def lint_step(
    session: Session, list_id: int, source: str, linter: Linter | None = None
) -> list[LintMessage]:
    """The issue lint on a step, without the checks that do not apply (its number)."""
    _list(session, list_id)  # a list that is not there: refused, as every other step
    ctx = context_for(_publication(session, list_id))
    messages = (linter or content_lint)(source, ctx)
    return [m for m in messages if m.code not in NOT_FOR_WELCOME]


def _checked(
    session: Session, list_id: int, source: str, linter: Linter | None
) -> list[LintMessage]:
    """Lint ``source``; refuse it (``welcome.lint``) when the lint finds an error."""
    if not source.strip():
        raise coded(IssueFormatError, "welcome.empty")
    messages = lint_step(session, list_id, source, linter)
    errors = [m for m in messages if m.level == "error"]
    if errors:
        first = errors[0]
        raise coded(
            IssueFormatError,
            "welcome.lint",
            where={"line": first.line},
            count=len(errors),
            first=first.message[:300],
        )
    return messages


def _title(source: str) -> str:
    from newsletter.content.parser import parse_issue

    return parse_issue(source).title[:300]


def steps(session: Session, list_id: int) -> list[WelcomeStep]:
    _list(session, list_id)
    return list(
        session.scalars(
            select(WelcomeStep).where(WelcomeStep.list_id == list_id).order_by(WelcomeStep.position)
        )
    )


def get_step(session: Session, list_id: int, step_id: int) -> WelcomeStep:
    step = session.get(WelcomeStep, step_id)
    if step is None or step.list_id != list_id:
        raise coded(NotFound, "welcome.step_not_found", step_id=step_id)
    return step


def add_step(
    session: Session,
    list_id: int,
    source: str,
    delay: str | int,
    actor: str,
    linter: Linter | None = None,
) -> tuple[WelcomeStep, list[LintMessage]]:
    """Add a step at the end of the list's series (linted, rendered, with its send)."""
    _list(session, list_id, lock=True)
    seconds = parse_delay(delay)
    have = session.scalar(select(func.count()).where(WelcomeStep.list_id == list_id)) or 0
    if have >= MAX_STEPS:
        raise coded(StateError, "welcome.too_many", limit=MAX_STEPS)
    messages = _checked(session, list_id, source, linter)
    pub = _publication(session, list_id)
    # The hidden issues' numbers are per publication, shared by every list it sends to:
    # two lists adding a step at once would both take the same number.
    session.execute(select(Publication.id).where(Publication.id == pub.id).with_for_update())
    lowest = session.scalar(
        select(func.min(Issue.number)).where(Issue.publication_id == pub.id, Issue.number < 0)
    )
    issue = Issue(
        publication_id=pub.id,
        number=(lowest or 0) - 1,
        title=_title(source),
        source_text=source,
        source_hash=_hash(source),
        status="draft",
        kind="welcome",
        created_by=actor,
        updated_by=actor,
    )
    session.add(issue)
    session.flush()
    render_issue(session, issue.id)
    now = utcnow()
    send = Send(
        publication_id=pub.id,
        issue_id=issue.id,
        channel="email",
        list_id=list_id,
        state="sending",
        kind="welcome",
        started_at=now,
        created_by=actor,
    )
    session.add(send)
    session.flush()
    top = session.scalar(
        select(func.max(WelcomeStep.position)).where(WelcomeStep.list_id == list_id)
    )
    step = WelcomeStep(
        list_id=list_id,
        position=(top or 0) + 1,
        delay_seconds=seconds,
        issue_id=issue.id,
        send_id=send.id,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(step)
    session.flush()
    audit(session, actor, "welcome.add", f"list:{list_id}", step=step.id, delay=seconds)
    return step, messages


def _hash(source: str) -> str:
    import hashlib

    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def update_step(
    session: Session,
    list_id: int,
    step_id: int,
    *,
    source: str | None = None,
    delay: str | int | None = None,
    actor: str,
    linter: Linter | None = None,
) -> tuple[WelcomeStep, list[LintMessage]]:
    """Change a step's content or delay; later subscribers get the new version."""
    _list(session, list_id, lock=True)
    step = get_step(session, list_id, step_id)
    messages: list[LintMessage] = []
    if delay is not None:
        step.delay_seconds = parse_delay(delay)
    if source is not None:
        messages = _checked(session, list_id, source, linter)
        issue = session.get(Issue, step.issue_id)
        assert issue is not None
        if issue.source_hash != _hash(source):
            issue.source_text = source
            issue.source_hash = _hash(source)
            issue.title = _title(source)
            issue.updated_by = actor
            issue.updated_at = utcnow()
            session.flush()
            render_issue(session, issue.id, force=True)
            from newsletter.delivery.compiled import clear_cache

            clear_cache()  # this process: the next message is built from the new rendition
    step.updated_at = utcnow()
    audit(session, actor, "welcome.update", f"list:{list_id}", step=step.id,
          delay=step.delay_seconds, source=source is not None)  # fmt: skip
    return step, messages


def delete_step(session: Session, list_id: int, step_id: int, actor: str) -> None:
    """Remove a step; what it sent stays in the ledger, what it had queued is skipped."""
    _list(session, list_id, lock=True)
    step = get_step(session, list_id, step_id)
    session.execute(
        update(Delivery)
        .where(Delivery.send_id == step.send_id, Delivery.state.in_(("queued", "deferred")))
        .values(state="skipped", last_reply="welcome step deleted / 欢迎步骤已删除",
                claimed_by=None, lease_until=None)
    )  # fmt: skip
    session.execute(
        update(Send)
        .where(Send.id == step.send_id)
        .values(state="cancelled", finished_at=utcnow(), updated_at=utcnow())
    )
    position = step.position
    session.delete(step)
    session.flush()
    _renumber(session, list_id)
    audit(session, actor, "welcome.delete", f"list:{list_id}", step=step_id, position=position)


def move_step(session: Session, list_id: int, step_id: int, direction: str, actor: str) -> None:
    """Move a step one place up or down in its series."""
    if direction not in ("up", "down"):
        raise coded(StateError, "welcome.bad_move")
    _list(session, list_id, lock=True)
    order = [s.id for s in steps(session, list_id)]
    get_step(session, list_id, step_id)
    i = order.index(step_id)
    j = i - 1 if direction == "up" else i + 1
    if not 0 <= j < len(order):
        return
    order[i], order[j] = order[j], order[i]
    _renumber(session, list_id, order)
    audit(session, actor, "welcome.move", f"list:{list_id}", step=step_id, direction=direction)


def _renumber(session: Session, list_id: int, order: list[int] | None = None) -> None:
    """Positions 1…n in ``order`` (default: the current order), without ever holding two
    steps at one position (the unique constraint is checked per statement)."""
    if order is None:
        order = [s.id for s in steps(session, list_id)]
    for i, sid in enumerate(order, start=1):  # out of the way first
        session.execute(update(WelcomeStep).where(WelcomeStep.id == sid).values(position=-i))
    for i, sid in enumerate(order, start=1):
        session.execute(update(WelcomeStep).where(WelcomeStep.id == sid).values(position=i))
    session.expire_all()


def step_stats(session: Session, step: WelcomeStep) -> dict[str, int]:
    """Per-step figures from its send's ledger: delivery states, first opens and clicks."""
    counts = dict.fromkeys(("queued", "sending", "sent", "deferred", "bounced", "failed",
                            "skipped"), 0)  # fmt: skip
    for state, n in session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.send_id == step.send_id)
        .group_by(Delivery.state)
    ):
        counts[str(state)] = int(n)
    opened, clicked = session.execute(
        select(func.count(Delivery.first_open_at), func.count(Delivery.first_click_at)).where(
            Delivery.send_id == step.send_id
        )
    ).one()
    return {**counts, "opened": int(opened or 0), "clicked": int(clicked or 0)}


def step_row(session: Session, step: WelcomeStep, *, source: bool = False) -> dict[str, Any]:
    """A step as the console and the API show it."""
    issue = session.get(Issue, step.issue_id)
    assert issue is not None
    row: dict[str, Any] = {
        "id": step.id,
        "list_id": step.list_id,
        "position": step.position,
        "delay_seconds": step.delay_seconds,
        "delay": delay_text(step.delay_seconds),
        "title": issue.title,
        "issue_id": issue.id,
        "send_id": step.send_id,
        "created_at": step.created_at.isoformat(),
        "updated_at": step.updated_at.isoformat(),
        "stats": step_stats(session, step),
    }
    if source:
        row["source"] = issue.source_text
    return row
