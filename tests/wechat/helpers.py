"""Shared helpers for the WeChat tests."""

from __future__ import annotations

from pathlib import Path

from newsletter.core.db import session_scope
from newsletter.issues.review import approve
from newsletter.issues.store import create_issue

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "issue-sample.md"


def add_approved(path: Path = SAMPLE) -> int:
    """Store ``path`` as an issue and approve it (the WeChat channel's gate)."""
    with session_scope() as s:
        issue, _ = create_issue(s, path)
        approve(s, issue, "editor@example.org")
        return issue.id
