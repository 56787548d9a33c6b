"""Console services for review both ways: submit, request changes, the history and diff
of an issue's versions, and each user's review queue."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import select

from newsletter.core.catalogue import coded
from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound
from newsletter.issues.store import get_issue
from newsletter.models import Issue
from newsletter.web.console.auth import Principal, record
from newsletter.web.console.services.issues import issue_summary

__all__ = ["issue_history", "request_changes", "review_queue", "submit_review", "version_diff"]


def _names(s: Any, usernames: set[str]) -> dict[str, str]:
    """Username → display name (the username when the user has none, or is not a user)."""
    from newsletter.models import User

    rows = s.execute(
        select(User.username, User.display_name).where(User.username.in_(usernames))
    ).all()
    found = {u: (d or u) for u, d in rows}
    return {u: found.get(u, u) for u in usernames}


def submit_review(actor: Principal, issue_id: int, request: Request | None = None) -> None:
    from newsletter.issues.review import submit_for_review

    with session_scope() as s:
        issue = get_issue(s, issue_id)
        submit_for_review(s, issue, actor.username)
        record(s, actor, "console.review", f"issue:{issue.id}", request)


def request_changes(
    actor: Principal, issue_id: int, note: str, request: Request | None = None
) -> None:
    from newsletter.issues.review import request_changes as send_back

    with session_scope() as s:
        issue = get_issue(s, issue_id)
        send_back(s, issue, actor.username, note)


def issue_history(issue_id: int) -> dict[str, Any]:
    """The versions of an issue's source and its review events, people by display name."""
    from newsletter.core.audit import AuditLog
    from newsletter.models import IssueVersion

    with session_scope() as s:
        versions = s.scalars(
            select(IssueVersion)
            .where(IssueVersion.issue_id == issue_id)
            .order_by(IssueVersion.version.desc())
        ).all()
        events = s.scalars(
            select(AuditLog)
            .where(
                AuditLog.target == f"issue:{issue_id}",
                AuditLog.action.in_(
                    ("issue.upload", "issue.review", "issue.approve", "issue.request_changes")
                ),
            )
            .order_by(AuditLog.id.desc())
            .limit(50)
        ).all()
        names = _names(
            s, {v.created_by for v in versions if v.created_by} | {e.actor for e in events}
        )
        return {
            "versions": [
                {
                    "version": v.version,
                    "by": names.get(v.created_by or "", v.created_by or "—"),
                    "at": v.created_at.isoformat(),
                }
                for v in versions
            ],
            "events": [
                {
                    "action": e.action,
                    "by": names.get(e.actor, e.actor),
                    "at": e.at.isoformat(),
                    "note": (e.detail or {}).get("note", ""),
                }
                for e in events
            ],
        }


def version_diff(issue_id: int, a: int, b: int) -> dict[str, Any]:
    """A side-by-side diff of two versions of the source (difflib; escaped by it)."""
    import difflib

    from newsletter.models import IssueVersion

    with session_scope() as s:
        issue = get_issue(s, issue_id)
        rows = {
            v.version: v.source_text
            for v in s.scalars(
                select(IssueVersion).where(
                    IssueVersion.issue_id == issue_id, IssueVersion.version.in_((a, b))
                )
            )
        }
        if a not in rows or b not in rows:
            raise coded(NotFound, "review.no_version", a=a, b=b)
        table = difflib.HtmlDiff(wrapcolumn=48).make_table(
            rows[a].splitlines(),
            rows[b].splitlines(),
            f"v{a}",
            f"v{b}",
            context=True,
            numlines=2,
        )
        return {"number": issue.number, "title": issue.title, "a": a, "b": b, "table": table}


def review_queue(actor: Principal) -> dict[str, list[dict[str, Any]]]:
    """For the dashboard: issues waiting for this person's review (not their own), and their
    own issues sent back with a note."""
    from newsletter.core.audit import AuditLog

    with session_scope() as s:
        waiting = [
            issue_summary(i)
            for i in s.scalars(
                select(Issue)
                .where(Issue.status == "in_review", Issue.kind == "weekly")
                .order_by(Issue.number)
            )
            if actor.username not in {i.created_by, i.updated_by}
        ]
        back: list[dict[str, Any]] = []
        for i in s.scalars(select(Issue).where(Issue.status == "draft", Issue.kind == "weekly")):
            last = s.scalar(
                select(AuditLog)
                .where(AuditLog.target == f"issue:{i.id}", AuditLog.action.like("issue.%"))
                .order_by(AuditLog.id.desc())
                .limit(1)
            )
            if (
                last is not None
                and last.action == "issue.request_changes"
                and (last.detail or {}).get("author") == actor.username
            ):
                by = _names(s, {last.actor})[last.actor]
                back.append({**issue_summary(i), "note": last.detail.get("note", ""), "by": by})
        return {"waiting": waiting, "sent_back": back}
