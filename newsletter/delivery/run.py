"""Driving a send: start (plan, then fan out), continue, finish.

The same functions serve both scales.  In embedded mode :func:`drive_inline`
loops in-process; with a broker, the Celery tasks in ``workers/tasks.py`` call
:func:`start` and :func:`step` and re-enqueue themselves as :func:`step` says.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.core.db import lost_connection, session_scope
from newsletter.core.errors import NewsletterError, NotFound, SealError, StateError
from newsletter.delivery.batch import process_batch
from newsletter.delivery.outcomes import BatchResult
from newsletter.delivery.sends import maybe_finish, pending, plan, transition
from newsletter.issues.seal import report_broken
from newsletter.issues.store import render_issue
from newsletter.models import Send

__all__ = ["EmptySend", "Next", "drive_inline", "start", "start_channel", "step"]


class EmptySend(StateError):
    """The send may reach nobody on its list: it ended ``empty`` and nothing was sent."""


log = logging.getLogger(__name__)


def channel_of(send_id: int) -> str:
    with session_scope() as s:
        ch = s.scalar(select(Send.channel).where(Send.id == send_id))
    if ch is None:
        raise NotFound(f"send {send_id} does not exist")
    return ch


def start_channel(send_id: int) -> str:
    """Start a send of any channel in this process; returns its state afterwards.

    Email sends are driven to the end here (embedded mode); WeChat sends run the
    publishing flow (upload, draft, publish/mass send, poll), which is resumable.
    A WeChat failure never touches the email send of the same issue.
    """
    if channel_of(send_id) == "wechat":
        from newsletter.wechat.publisher import publish_send

        with session_scope() as s:
            send = s.get(Send, send_id)
            if send is not None and send.state in ("draft", "scheduled"):
                transition(s, send_id, "plan")
                transition(s, send_id, "start")
        return str(publish_send(send_id).get("send_state", "sending"))
    return drive_inline(send_id)


def start(send_id: int) -> tuple[int, int]:
    """Plan ``send_id`` and move it to ``sending``. Idempotent; returns (planned, excluded).

    A send that cannot be planned or started (no list, a segment gone, the issue
    cannot be rendered for email) ends ``failed`` with the reason stored, and
    the error is raised for the caller to show: a send never stays silently
    unstarted.
    """
    try:
        return _start(send_id)
    except NewsletterError as exc:
        _fail_send(send_id, str(exc))
        if isinstance(exc, SealError):
            report_broken(exc)
        raise


def _fail_send(send_id: int, reason: str) -> None:
    from newsletter.delivery.alerts import notify

    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None or send.state not in ("draft", "scheduled", "planning"):
            return
        if send.state in ("draft", "scheduled"):
            transition(s, send_id, "plan")
        transition(s, send_id, "fail", error=f"could not start / 无法开始: {reason}")
        notify(s, "failed", f"send {send_id} could not start", reason, key=f"send:{send_id}")


def _check_links_are_https() -> None:
    """One-click unsubscribe (RFC 8058) needs an https List-Unsubscribe URL.

    Refused for a public http base URL unless ``allow_http_links`` is set; a
    loopback base URL (the embedded demo, local tests) is local use and allowed.
    """
    from urllib.parse import urlsplit

    from newsletter.core.config import get_settings
    from newsletter.core.errors import ConfigError

    cfg = get_settings()
    parts = urlsplit(cfg.base_url)
    local = (parts.hostname or "") in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not local and not cfg.allow_http_links:
        raise ConfigError(
            f"NEWSLETTER_BASE_URL {cfg.base_url} is not https: List-Unsubscribe and every link "
            "would go over plain http. Set an https URL (or NEWSLETTER_ALLOW_HTTP_LINKS=1 for "
            "local use) / 退订链接必须是 https 地址"
        )


def _start(send_id: int) -> tuple[int, int]:
    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None:
            raise NotFound(f"send {send_id} does not exist")
        if send.state in ("sending", "paused", "finished", "cancelled", "failed", "empty"):
            return send.planned_count, send.excluded_count
        if send.channel == "email":
            _check_links_are_https()
        if send.state in ("draft", "scheduled"):
            transition(s, send_id, "plan")
        render_issue(s, send.issue_id)
    with session_scope() as s:
        planned, excluded = plan(s, send_id)
        send = s.get(Send, send_id)
        assert send is not None
        already = send.already_received or 0
        if planned == 0 and already == 0 and send.channel == "email":
            # Nobody on the list may be reached: a send that "finished" here would mark the
            # issue sent although no reader got it. It ends ``empty``, ops are told, and
            # the caller gets the error (after this transaction has committed).
            empty = (
                f"列表中没有可以发送的订阅者（{excluded} 人已退订、被屏蔽或被抑制），未发送 / "
                f"the list has no subscriber this send may reach ({excluded} unsubscribed, "
                "suppressed or blocked); nothing was sent"
            )
            transition(s, send_id, "empty", error=empty)
            from newsletter.delivery.alerts import notify

            notify(s, "empty", f"send {send_id} had nobody to send to", empty,
                   key=f"send:{send_id}", needs_person=True)  # fmt: skip
        else:
            empty = ""
            _begin(s, send_id, planned, excluded, already)
    if empty:
        raise EmptySend(empty)
    return planned, excluded


def _begin(s: Session, send_id: int, planned: int, excluded: int, already: int) -> None:
    """Deal a subject test and the warm-up, then start the send (in the plan's transaction)."""
    from newsletter.delivery.subjects import assign

    assign(s, send_id)  # a subject test: deal the subjects, hold the remainder
    from newsletter.delivery.warmup import plan_send

    plan_send(s, send_id)  # warm-up: beyond today's allowance waits for later days
    if transition(s, send_id, "start"):
        from newsletter.delivery.alerts import notify

        notify(
            s,
            "started",
            f"send {send_id} started",
            f"planned {planned} deliveries; {already} list members already received "
            f"this issue from another send; {max(excluded - already, 0)} excluded "
            "(unsubscribed, suppressed or blocked)",
            key=f"started:{send_id}",
            once=True,
        )


def _wait_for_relay(send_id: int) -> bool:
    """Embedded mode: probe the relay of an auto-paused send until it resumes or gives up."""
    from newsletter.delivery.heal import heal

    while True:
        with session_scope() as s:
            send = s.get(Send, send_id)
            if send is None or send.state != "paused" or send.auto_paused_at is None:
                return False
            due = send.next_probe_at
        if due is not None:
            from newsletter.models import utcnow

            time.sleep(max(0.0, (due - utcnow()).total_seconds()))
        outcome = heal(send_id)
        if outcome == "resumed":
            return True
        if outcome in ("gave_up", "n/a"):
            return False


#: The longest a batch chain sleeps before looking again (seconds).
MAX_LATER = 1800.0


@dataclass(slots=True)
class Next:
    action: str  # "again" | "later" | "done" | "stopped"
    delay: float = 0.0
    result: BatchResult | None = None


def step(send_id: int, *, batch_size: int | None = None) -> Next:
    """Process one batch and say what should happen next."""
    res = process_batch(send_id, batch_size=batch_size)
    if res.stopped in (
        "paused",
        "cancelled",
        "failed",
        "empty",
        "finished",
        "missing",
        "draft",
        "scheduled",
        "planning",
    ):
        if res.stopped == "finished":
            return Next("done", result=res)
        return Next("stopped", result=res)
    if res.claimed:
        return Next("again", result=res)
    if maybe_finish(send_id):
        return Next("done", result=res)
    with session_scope() as s:
        _n, nxt = pending(s, send_id)
    if nxt is not None:
        from newsletter.core.clock import now as utcnow
        from newsletter.delivery.subjects import HOLD

        if nxt >= HOLD:
            # Only a subject test's held readers are left: nothing to wake up for (a
            # countdown to year 9999 would overflow); the decision restarts the send.
            return Next("stopped", result=res)
        # Capped: a Celery countdown beyond the broker's visibility timeout (1 h) would be
        # delivered twice; a warm-up day away is reached by waking up now and then.
        return Next("later", min(max(0.5, (nxt - utcnow()).total_seconds()), MAX_LATER), res)
    # Deliveries leased by another worker are still in flight: look again shortly.
    return Next("later", 1.0, res)


def step_resilient(send_id: int, *, batch_size: int | None = None) -> Next:
    """:func:`step`, but a lost database connection does not end the batch chain: the
    error is logged as it was (not as the follow-up PendingRollbackError), the pool's
    dead connections are dropped, and the chain looks again in a moment. The claimed
    rows keep their lease until it runs out, then any worker takes them (at-risk
    counted as for a crash)."""
    from sqlalchemy.exc import DBAPIError

    try:
        return step(send_id, batch_size=batch_size)
    except DBAPIError as exc:
        if not lost_connection(exc):
            raise
        log.warning(
            "send %s: database connection lost (%s); the batch chain goes on",
            send_id,
            str(exc.orig or exc).splitlines()[0][:200],
        )
        from newsletter.core.db import engine

        engine().dispose()  # drop pooled connections to the old server process
        return Next("later", 2.0)


def drive_inline(send_id: int, *, max_wait: float = 30.0, batch_size: int | None = None) -> str:
    """Run a send to the end in this process (embedded mode). Returns the final state.

    Deferred deliveries whose next attempt lies more than ``max_wait`` seconds
    ahead are left for a later run (``newsletter send resume`` or the tick).
    """
    start(send_id)
    while True:
        nxt = step_resilient(send_id, batch_size=batch_size)
        if nxt.action == "stopped" and _wait_for_relay(send_id):
            continue  # the relay came back: the send resumed
        if nxt.action in ("done", "stopped"):
            break
        if nxt.action == "later":
            if nxt.delay > max_wait:
                break
            time.sleep(nxt.delay)
    with session_scope() as s:
        state = s.scalar(select(Send.state).where(Send.id == send_id))
    return state or "missing"
