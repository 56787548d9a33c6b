"""Review of an issue: to review, the lint errors that block approval, and approval itself
(four-eyes when the publication asks for it). Who and when are audited."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.core.audit import audit
from newsletter.core.errors import NewsletterError, StateError
from newsletter.core.wechat_settings import get_wechat_settings
from newsletter.models import Issue, Publication, ReviewNotice, User, utcnow
from newsletter.models.console import APPROVER_ROLES

__all__ = ["approval_errors", "approve", "notify", "request_changes", "submit_for_review"]


def _author(issue: Issue) -> str:
    return issue.updated_by or issue.created_by or ""


def notify(session: Session, issue: Issue, kind: str, actor: str, note: str = "") -> list[str]:
    """Write the review notices of one step, in the step's transaction; returns who.

    ``ready``: every active person who may approve it (never the actor; with four-eyes,
    never its uploader or last editor). ``approved`` and ``sent_back``: its author, unless
    the author took the step. Nobody gets a second unread notice of the same kind for
    the same issue."""
    if kind == "ready":
        pub = session.get(Publication, issue.publication_id)
        barred = {actor}
        if pub is not None and pub.four_eyes:
            barred |= {issue.created_by or "", issue.updated_by or ""}
        people = [
            u
            for u in session.scalars(
                select(User.username).where(User.active.is_(True), User.role.in_(APPROVER_ROLES))
            )
            if u not in barred
        ]
    else:
        author = _author(issue)
        people = [author] if author and author != actor else []
    # One unread notice of a kind per person and issue: an author who sends their own issue
    # to review and back again in a loop must not mail every approver each time. Once
    # read, the next step tells them again.
    unread = set(
        session.scalars(
            select(ReviewNotice.recipient).where(
                ReviewNotice.issue_id == issue.id,
                ReviewNotice.kind == kind,
                ReviewNotice.read_at.is_(None),
            )
        )
    )
    if note and unread & set(people):  # the unread notice says the latest note, not mailed again
        session.execute(
            update(ReviewNotice)
            .where(
                ReviewNotice.issue_id == issue.id,
                ReviewNotice.kind == kind,
                ReviewNotice.read_at.is_(None),
                ReviewNotice.recipient.in_(sorted(unread & set(people))),
            )
            .values(note=note, actor=actor)
        )
    people = [who for who in people if who not in unread]
    for who in people:
        session.add(
            ReviewNotice(issue_id=issue.id, recipient=who, kind=kind, actor=actor, note=note)
        )
    return people


def submit_for_review(session: Session, issue: Issue, actor: str = "cli") -> None:
    if issue.status not in ("draft", "in_review"):
        raise StateError(f"issue {issue.number} is {issue.status}; only a draft goes to review")
    if issue.status == "in_review":
        return
    issue.status = "in_review"
    audit(session, actor, "issue.review", f"issue:{issue.id}")
    notify(session, issue, "ready", actor)


def request_changes(session: Session, issue: Issue, actor: str, note: str) -> None:
    """Send an issue in review (or approved, not yet scheduled) back to its author with a
    note: it becomes a draft again, and the note is kept in the audit log."""
    note = " ".join(note.split())[:2000]
    from newsletter.core.catalogue import coded

    if not note:
        raise coded(StateError, "review.note_required")
    if issue.status not in ("in_review", "approved", "draft"):
        raise coded(
            StateError,
            "review.cannot_send_back",
            number=issue.number,
            state_en=issue.status,
            state_zh="排期" if issue.status == "scheduled" else "发送",
        )
    issue.status = "draft"
    issue.approved_at = None
    issue.approved_by = None
    issue.sealed_version = None
    audit(
        session,
        actor,
        "issue.request_changes",
        f"issue:{issue.id}",
        note=note,
        author=_author(issue),
    )
    notify(session, issue, "sent_back", actor, note)


def approval_errors(session: Session, issue: Issue) -> list[str]:
    """The lint errors of the issue's current content that block its approval.

    The same checks as ``issue lint``: structure, links, images and the size
    budgets of every channel that is configured (a WeChat-only problem does not
    block an installation without WeChat).
    """
    from pathlib import Path

    from newsletter.content.lint import lint_issue
    from newsletter.content.parser import parse_issue
    from newsletter.issues.store import context_for
    from newsletter.render.budget import size_checks

    base = Path(issue.base_dir) if issue.base_dir else None
    try:
        doc = parse_issue(issue.source_text, base_dir=base)
    except NewsletterError as exc:
        return [str(exc)]
    errors = [str(m) for m in lint_issue(doc, base_dir=base) if m.level == "error"]
    pub = session.get(Publication, issue.publication_id)
    assert pub is not None
    wechat = get_wechat_settings().configured
    errors += [
        f"{msg} [{code}]"
        for level, code, msg in size_checks(doc, context_for(pub))
        if level == "error" and (wechat or not code.startswith("wechat"))
    ]
    return errors


def approve(session: Session, issue: Issue, actor: str) -> None:
    """Approve an issue (draft or in review): seal its current version. Who and when are
    recorded, and the seal (:mod:`newsletter.issues.seal`).

    Refused while the current content has lint errors (:func:`approval_errors`) or an
    asset cannot be read. An issue released before sealing existed (approved, scheduled
    or sent without a seal) is sealed here without changing its state.
    """
    from newsletter.issues.seal import seal_issue
    from newsletter.issues.store import renderer_version

    if issue.kind == "welcome":  # a welcome step's content goes out with its step only
        from newsletter.core.catalogue import coded

        raise coded(StateError, "welcome.not_an_issue")
    legacy = issue.status in ("approved", "scheduled", "sent") and issue.sealed_version is None
    if issue.status == "approved" and not legacy:
        return
    if issue.status not in ("draft", "in_review") and not legacy:
        raise StateError(f"issue {issue.number} is {issue.status}; it cannot be approved again")
    pub = session.get(Publication, issue.publication_id)
    if pub is not None and pub.four_eyes and actor in {issue.created_by, issue.updated_by}:
        raise StateError(
            f"four-eyes: {actor} uploaded or last edited issue {issue.number} and cannot "
            "approve it; another editor must / 四眼原则：上传或最后修改者不能审核自己的期刊"
        )
    errors = approval_errors(session, issue)
    if errors:
        shown = "; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else "")
        raise StateError(
            f"issue {issue.number} has {len(errors)} lint error(s); fix them before approving "
            f"/ 期刊有 {len(errors)} 处错误，修正后才能审核通过: {shown}"
        )
    assert pub is not None
    # The bytes are read once more, stored by hash and sealed: what is used from now on.
    row = seal_issue(session, issue, actor, renderer_version(pub))
    if not legacy:
        issue.status = "approved"
        issue.approved_by = actor
        issue.approved_at = utcnow()
    audit(session, actor, "issue.approve", f"issue:{issue.id}", source_hash=issue.source_hash,
          sealed_version=row.version, seal=row.digest, legacy=legacy)  # fmt: skip
    if not legacy:
        notify(session, issue, "approved", actor)
    from newsletter.core.events import emit

    emit(session, "issue.approved", [({"issue_id": issue.id, "publication_id": issue.publication_id,
          "number": issue.number, "sealed_version": row.version, "seal": row.digest}, None)])  # fmt: skip
