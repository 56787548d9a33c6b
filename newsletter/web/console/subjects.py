"""Subject tests in the console: set 2–4 subjects on a send before it starts, see each
variant side by side (human and machine opens and clicks), and decide early."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError
from newsletter.delivery.subjects import configure, decide, variant_stats
from newsletter.models import Send
from newsletter.web.console.auth import Principal, need, record
from newsletter.web.console.flash import back

__all__ = ["router", "subject_panel"]

router = APIRouter(prefix="/console/subject-tests", include_in_schema=False)
Ops = Annotated[Principal, Depends(need("ops"))]


def subject_panel(send_id: int) -> dict[str, Any]:
    """What the send page shows of its subject test."""
    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None:
            return {}
        return {
            "subjects": list(send.subject_variants or []),
            "share": send.test_share,
            "wait_minutes": send.test_wait_seconds // 60,
            "metric": send.test_metric,
            "decide_at": send.test_decide_at.isoformat() if send.test_decide_at else None,
            "report": send.test_report,
            "variants": variant_stats(s, send_id) if send.subject_variants else [],
            "editable": send.state in ("draft", "scheduled"),
            "decidable": bool(send.subject_variants)
            and send.test_decide_at is not None
            and send.test_winner is None,
        }


@router.post("/{send_id}")
def set_subjects(
    request: Request,
    user: Ops,
    send_id: int,
    subject: Annotated[list[str] | None, Form()] = None,
    share: Annotated[int, Form()] = 20,
    wait_minutes: Annotated[int, Form()] = 240,
    metric: Annotated[str, Form()] = "opens",
) -> Response:
    subjects = [x for x in (subject or []) if x.strip()]
    try:
        with session_scope() as s:
            configure(
                s, send_id, subjects, share=share, wait_seconds=wait_minutes * 60, metric=metric
            )
            record(
                s,
                user,
                "send.subjects",
                f"send:{send_id}",
                request,
                subjects=len(subjects),
                share=share,
                metric=metric,
            )
    except NewsletterError as exc:
        return back(f"/console/sends/{send_id}#subjects", str(exc), "error")
    return back(f"/console/sends/{send_id}#subjects", "主题测试已设置 / subject test set")


@router.post("/{send_id}/decide")
def decide_now(request: Request, user: Ops, send_id: int) -> Response:
    """Decide before the set time, then release the remainder with the chosen subject."""
    from newsletter.web.console.services.sends import _run_inline

    try:
        with session_scope() as s:
            report = decide(s, send_id, force=True)
            if report is not None:
                record(
                    s,
                    user,
                    "send.decide",
                    f"send:{send_id}",
                    request,
                    winner=report["winner"] + 1,
                    p_value=report["p_value"],
                )
    except NewsletterError as exc:
        return back(f"/console/sends/{send_id}#subjects", str(exc), "error")
    if report is None:
        return back(
            f"/console/sends/{send_id}#subjects",
            "该发送没有可判定的主题测试 / this send has no subject test to decide",
            "error",
        )
    cfg = get_settings()
    if cfg.embedded:
        _run_inline(send_id)
    else:
        from newsletter.core.dispatch import dispatcher

        dispatcher().run_batches(send_id, cfg.send_parallelism)
    return back(f"/console/sends/{send_id}#subjects", str(report["note"]))
