"""House styles that are learnt: a publication's import rules.

An editor's correction in an import outline ("line 42 is an item") is kept as a
pattern of the publication (:func:`newsletter.content.textimport.rule_for`): the
line's marker shape, or the line itself.  Every later import into that
publication applies the rules, so one correction, once, covers next week's brief.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.content.textimport import rule_for
from newsletter.models import ImportRule

__all__ = ["learn", "reset", "rules_of", "styles"]


def rules_of(session: Session, publication_id: int) -> list[tuple[str, str, str]]:
    """``(kind, pattern, class)`` of every rule, oldest first."""
    rows = session.scalars(
        select(ImportRule)
        .where(ImportRule.publication_id == publication_id)
        .order_by(ImportRule.id)
    )
    return [(r.kind, r.pattern, r.cls) for r in rows]


def styles(session: Session, publication_id: int) -> list[dict[str, str]]:
    rows = session.scalars(
        select(ImportRule)
        .where(ImportRule.publication_id == publication_id)
        .order_by(ImportRule.id)
    )
    return [
        {"kind": r.kind, "pattern": r.pattern, "class": r.cls, "example": r.example} for r in rows
    ]


def learn(
    session: Session,
    publication_id: int,
    lines: Mapping[int, str],
    hints: Mapping[int, str],
    actor: str | None,
) -> list[tuple[str, str, str]]:
    """Keep each correction (line → class) as a rule; returns the rules added or changed."""
    changed: list[tuple[str, str, str]] = []
    for n, cls in sorted(hints.items()):
        text = lines.get(n, "")
        rule = rule_for(text, cls)
        if rule is None:
            continue
        kind, pattern = rule
        row = session.scalar(
            select(ImportRule).where(
                ImportRule.publication_id == publication_id,
                ImportRule.kind == kind,
                ImportRule.pattern == pattern,
            )
        )
        if row is None:
            session.add(
                ImportRule(
                    publication_id=publication_id,
                    kind=kind,
                    pattern=pattern,
                    cls=cls,
                    example=text.strip()[:200],
                    created_by=actor,
                )
            )
        elif row.cls != cls:
            row.cls = cls
            row.example = text.strip()[:200]
        else:
            continue
        changed.append((kind, pattern, cls))
    session.flush()
    return changed


def reset(session: Session, publication_id: int) -> int:
    """Forget every rule of the publication; returns how many there were."""
    result = session.execute(delete(ImportRule).where(ImportRule.publication_id == publication_id))
    return int(getattr(result, "rowcount", 0) or 0)
