"""Publications as their own thing: created on purpose, never from an issue's title, and an
issue moved between them (audited) when it went to the wrong one.

The sender identity of a new publication starts from the configured one; its weekly slot
is set on the 排期 page. A move keeps the issue's content and number: it is refused when
the target has that number already, or when the issue has a send (a send belongs to one
publication). An approved issue moved goes back to review: its seal covered the old
publication's footer and sender, so someone approves it again for the new one.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.core.audit import audit
from newsletter.core.catalogue import coded
from newsletter.core.config import get_settings
from newsletter.core.errors import ConfigError, NotFound, StateError
from newsletter.issues.store import lock_issue, publication_by_slug
from newsletter.models import Issue, Publication, Send

__all__ = ["SLUG", "create_publication", "move_issue", "publication_by_slug"]

#: A publication's slug: it appears in archive and feed URLs.
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


def create_publication(
    session: Session, slug: str, name: str, actor: str, **fields: Any
) -> Publication:
    """A new publication named ``name`` at ``slug``; other fields default to the configured
    sender identity. Refused: a bad or taken slug, an empty name, a bad address or zone."""
    slug = (slug or "").strip().lower()
    name = " ".join((name or "").split())
    if not SLUG.match(slug):
        raise coded(ConfigError, "publication.bad_slug", slug=slug[:80])
    if not name:
        raise coded(ConfigError, "publication.no_name")
    if session.scalar(select(Publication.id).where(Publication.slug == slug)) is not None:
        raise coded(StateError, "publication.taken", slug=slug)
    cfg = get_settings()
    values: dict[str, Any] = {
        "from_name": cfg.from_name,
        "from_address": cfg.from_address,
        "list_id_domain": cfg.list_id_domain,
        "postal_address": cfg.postal_address,
        "timezone": "Asia/Shanghai",
        "track_opens": cfg.track_opens,
        "track_clicks": cfg.track_clicks,
    }
    values.update({k: v for k, v in fields.items() if v not in (None, "")})
    for key in ("from_address", "reply_to"):
        if values.get(key) and not _EMAIL.match(str(values[key])):
            raise coded(ConfigError, "publication.bad_address", field=key)
    try:
        ZoneInfo(str(values["timezone"]))
    except (KeyError, ValueError):
        raise coded(
            ConfigError, "publication.bad_zone", zone=str(values["timezone"])[:64]
        ) from None
    pub = Publication(slug=slug, name=name, **values)
    session.add(pub)
    session.flush()
    audit(session, actor, "publication.create", f"publication:{pub.id}", slug=slug, name=name)
    return pub


def move_issue(session: Session, issue: Issue, target: Publication, actor: str) -> bool:
    """Move ``issue`` to ``target``; False when it is there already. Audited."""
    if issue.kind != "weekly":  # a welcome step belongs to its list, not to a publication's run
        raise NotFound(f"issue {issue.id} does not exist / 期刊不存在")
    lock_issue(session, issue)  # a send created meanwhile is seen, or waits for the move
    if issue.publication_id == target.id:
        return False
    if issue.status in ("scheduled", "sent") or session.scalar(
        select(func.count()).select_from(Send).where(Send.issue_id == issue.id)
    ):
        raise coded(StateError, "publication.move_has_sends", number=issue.number)
    clash = session.scalar(
        select(Issue.id).where(Issue.publication_id == target.id, Issue.number == issue.number)
    )
    if clash is not None:
        raise coded(
            StateError, "publication.move_number_taken", number=issue.number, slug=target.slug
        )
    before = issue.publication_id
    was_approved = issue.status == "approved"
    issue.publication_id = target.id
    if was_approved:
        issue.status = "in_review"
        issue.approved_at = None
        issue.approved_by = None
        issue.sealed_version = None
    audit(session, actor, "issue.move", f"issue:{issue.id}", publication_from=before,
          publication_to=target.id, reapprove=was_approved)  # fmt: skip
    if was_approved:
        from newsletter.issues.review import notify

        notify(session, issue, "ready", actor)
    return True
