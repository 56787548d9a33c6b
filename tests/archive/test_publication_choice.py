"""An imported issue goes to a publication someone chose; none is invented from its title."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.core.errors import IssueFormatError
from newsletter.issues.store import create_issue, ensure_publication
from newsletter.models import Issue, Publication


def _source(tmp: Path, n: int, title: str, publication: str = "") -> Path:
    extra = f"publication: {publication}\n" if publication else ""
    path = tmp / f"i{n}-{abs(hash((title, publication)))}.md"
    path.write_text(
        f"---\ntitle: {title}\nnumber: {n}\n{extra}---\n\n## 一、要闻\n\n### 1. 条目\n\n正文。\n",
        encoding="utf-8",
    )
    return path


def test_a_brief_titled_differently_joins_the_only_publication(
    any_db: Settings, tmp_path: Path
) -> None:
    with session_scope() as s:
        ensure_publication(s, "政策周报", "weekly")
    with session_scope() as s:
        issue, _ = create_issue(s, _source(tmp_path, 7, "国资国企改革观察（总第156期）"))
        assert s.get(Publication, issue.publication_id).slug == "weekly"  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(Publication)) == 1


def test_with_several_publications_the_source_or_the_operator_chooses(
    any_db: Settings, tmp_path: Path
) -> None:
    with session_scope() as s:
        ensure_publication(s, "政策周报", "weekly")
        ensure_publication(s, "合规月报", "monthly")
    with session_scope() as s, pytest.raises(IssueFormatError) as exc:
        create_issue(s, _source(tmp_path, 8, "无名之刊"))
    assert "有多个刊物" in exc.value.message and "weekly" in exc.value.message
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Issue)) == 0  # nothing half-written
        by_name, _ = create_issue(s, _source(tmp_path, 8, "某期", publication="合规月报"))
        by_slug, _ = create_issue(s, _source(tmp_path, 9, "某期"), publication_slug="weekly")
        slugs = {
            s.get(Publication, i.publication_id).slug  # type: ignore[union-attr]
            for i in (by_name, by_slug)
        }
        assert slugs == {"monthly", "weekly"}
        assert s.scalar(select(func.count()).select_from(Publication)) == 2
