"""Subject tests that machine opens cannot fool.

A send may carry 2–4 subjects (:func:`configure`).  When it is planned,
:func:`assign` picks a random test share (default 20 %) of its deliveries and
deals the subjects out evenly among them; the other deliveries are *held*
(queued, but not due: ``next_attempt_at`` far in the future, no subject yet).

After ``test_wait_seconds``, :func:`decide` counts, per subject, the test
deliveries that were sent and those with a **human** open (or click; events
classified ``machine`` — Apple's Mail Privacy Protection proxy, link scanners
— are excluded).  The leader must beat every other subject in a two-sided
two-proportion z-test at ``alpha`` (Bonferroni-corrected for k − 1
comparisons).  Otherwise the first subject is kept and the report says that
no significant winner was found.  The held deliveries then get the chosen
subject and become due: the same send, the same ledger, one row (and one
message) per reader.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from newsletter.core.errors import NotFound, StateError
from newsletter.core.safety.headers import clean_text
from newsletter.models import Delivery, Event, Send, utcnow

__all__ = [
    "HOLD",
    "assign",
    "configure",
    "decide",
    "decide_due",
    "subject_for",
    "two_proportion_p",
    "variant_stats",
]

#: ``next_attempt_at`` of a held delivery: never due before the decision releases it.
HOLD = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
ALPHA = 0.05


def configure(
    session: Session,
    send_id: int,
    subjects: list[str],
    *,
    share: int = 20,
    wait_seconds: int = 4 * 3600,
    metric: str = "opens",
) -> None:
    """Give a draft send 2–4 subject variants.  Raises StateError with one clear line."""
    send = session.get(Send, send_id)
    if send is None:
        raise NotFound(f"send {send_id} does not exist / 发送不存在")
    if send.state not in ("draft", "scheduled"):
        raise StateError(
            f"send {send_id} is {send.state}; subjects can change only before it starts"
            " / 发送已开始，不能再改主题"
        )
    clean = [clean_text(x, 200).strip() for x in subjects]
    if not 2 <= len(clean) <= 4 or not all(clean) or len(set(clean)) != len(clean):
        raise StateError(
            "a subject test needs 2 to 4 different, non-empty subjects"
            " / 主题测试需要 2 至 4 个互不相同的非空主题"
        )
    if not 1 <= share <= 50:
        raise StateError("test share must be 1–50 percent / 测试比例须在 1% 到 50% 之间")
    if not 60 <= wait_seconds <= 7 * 86400:
        raise StateError(
            "test wait must be 1 minute to 7 days / 测试等待时间须在 1 分钟到 7 天之间"
        )
    if metric not in ("opens", "clicks"):
        raise StateError("test metric must be opens or clicks / 判定指标须为 opens 或 clicks")
    send.subject_variants = clean
    send.test_share, send.test_wait_seconds, send.test_metric = share, wait_seconds, metric


def assign(session: Session, send_id: int, *, rng: random.Random | None = None) -> int:
    """Deal the subjects to a random test share of the planned deliveries; hold the rest.

    Idempotent: a send whose deliveries were already dealt is left alone.  Returns the
    size of the test share.
    """
    send = session.get(Send, send_id)
    if send is None or not send.subject_variants or send.test_decide_at is not None:
        return 0
    k = len(send.subject_variants)
    ids = list(
        session.scalars(
            select(Delivery.id).where(Delivery.send_id == send_id).order_by(Delivery.id)
        )
    )
    (rng or random.SystemRandom()).shuffle(ids)
    n_test = min(len(ids), max(k, round(len(ids) * send.test_share / 100)))
    for idx in range(k):
        chunk = ids[idx:n_test:k]
        for i in range(0, len(chunk), 500):
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(chunk[i : i + 500]))
                .values(subject_idx=idx, subject_test=True)
                .execution_options(synchronize_session=False)
            )
    session.execute(
        update(Delivery)
        .where(Delivery.send_id == send_id, Delivery.subject_test.is_(False))
        .values(next_attempt_at=HOLD)
        .execution_options(synchronize_session=False)
    )
    send.test_decide_at = utcnow() + dt.timedelta(seconds=send.test_wait_seconds)
    return n_test


def subject_for(send: Send, idx: int | None) -> str | None:
    """The subject of variant ``idx`` of ``send`` (None: the issue's own subject)."""
    if idx is None or not send.subject_variants or not 0 <= idx < len(send.subject_variants):
        return None
    return send.subject_variants[idx]


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of H0: p1 == p2 (pooled two-proportion z-test)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


def variant_stats(
    session: Session, send_id: int, *, test_only: bool = False
) -> list[dict[str, Any]]:
    """Per subject: sent, human and machine unique opens and clicks, and the human rates."""
    send = session.get(Send, send_id)
    if send is None or not send.subject_variants:
        return []
    where = [Delivery.send_id == send_id, Delivery.subject_idx.is_not(None)]
    if test_only:
        where.append(Delivery.subject_test.is_(True))
    sent = dict(
        session.execute(
            select(Delivery.subject_idx, func.count())
            .where(*where, Delivery.state == "sent")
            .group_by(Delivery.subject_idx)
        ).all()
    )
    counts: dict[tuple[int | None, str, bool], int] = {}
    for kind in ("open", "click"):
        for machine in (False, True):
            cls = Event.cls == "machine" if machine else Event.cls != "machine"
            for idx, n in session.execute(
                select(Delivery.subject_idx, func.count(func.distinct(Event.delivery_id)))
                .join(Event, and_(Event.delivery_id == Delivery.id, Event.send_id == send_id))
                .where(*where, Event.kind == kind, cls)
                .group_by(Delivery.subject_idx)
            ).all():
                counts[(idx, kind, machine)] = int(n)
    out = []
    for idx, subject in enumerate(send.subject_variants):
        n = int(sent.get(idx, 0))
        ho, mo = counts.get((idx, "open", False), 0), counts.get((idx, "open", True), 0)
        hc, mc = counts.get((idx, "click", False), 0), counts.get((idx, "click", True), 0)
        out.append(
            {
                "index": idx,
                "subject": subject,
                "sent": n,
                "opens_human": ho,
                "opens_machine": mo,
                "clicks_human": hc,
                "clicks_machine": mc,
                "open_rate": round(ho / n, 4) if n else 0.0,
                "click_rate": round(hc / n, 4) if n else 0.0,
                "winner": send.test_winner == idx,
            }
        )
    return out


def decide(
    session: Session,
    send_id: int,
    *,
    now: dt.datetime | None = None,
    alpha: float = ALPHA,
    force: bool = False,
) -> dict[str, Any] | None:
    """Pick the subject for the held deliveries and release them.  None if not due yet.

    Idempotent: a decided send returns its recorded report.
    """
    now = now or utcnow()
    send = session.get(Send, send_id)
    if send is None or not send.subject_variants or send.test_decide_at is None:
        return None
    if send.test_winner is not None:
        return send.test_report
    if not force and now < send.test_decide_at:
        return None
    stats = variant_stats(session, send_id, test_only=True)
    key = "opens_human" if send.test_metric == "opens" else "clicks_human"
    rate = [(s[key] / s["sent"]) if s["sent"] else 0.0 for s in stats]
    leader = max(range(len(stats)), key=lambda i: (rate[i], -i))
    k = len(stats)
    p_values = {
        j: two_proportion_p(
            stats[leader][key], stats[leader]["sent"], stats[j][key], stats[j]["sent"]
        )
        for j in range(k)
        if j != leader
    }
    worst = max(p_values.values()) if p_values else 1.0
    significant = leader != 0 and worst < alpha / (k - 1)
    winner = leader if significant else 0
    if leader == 0 and worst < alpha / (k - 1):
        note = "the first subject won significantly / 第一个主题显著胜出"
    elif significant:
        note = f"subject {leader + 1} won significantly / 主题 {leader + 1} 显著胜出"
    else:
        note = "no significant winner: the first subject is kept / 无显著差异：保留第一个主题"
    report = {
        "metric": send.test_metric,
        "alpha": alpha,
        "leader": leader,
        "winner": winner,
        "significant": bool(worst < alpha / (k - 1)),
        "p_value": round(worst, 6),
        "p_values": {str(j + 1): round(p, 6) for j, p in p_values.items()},
        "note": note,
        "decided_at": now.isoformat(),
        "variants": stats,
        "machine_events_excluded": True,
    }
    send.test_winner = winner
    send.test_report = report
    session.execute(
        update(Delivery)
        .where(
            Delivery.send_id == send_id,
            Delivery.subject_test.is_(False),
            Delivery.subject_idx.is_(None),
        )
        .values(subject_idx=winner, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    return report


def decide_due(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Decide every subject test whose time has come; the ids of sends to (re)start."""
    now = now or utcnow()
    out = []
    for send_id in session.scalars(
        select(Send.id).where(
            Send.test_decide_at.is_not(None),
            Send.test_decide_at <= now,
            Send.test_winner.is_(None),
            Send.state.in_(("sending", "paused")),
        )
    ):
        if decide(session, send_id, now=now) is not None:
            out.append(send_id)
    return out
