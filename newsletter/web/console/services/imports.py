"""Console services for importing a brief (pasted text, Word or a web page): the preview
with its outline, the kept document and its images, and the house rules an editor's
corrections teach."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from newsletter.core.catalogue import coded, message
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.models import Issue, Publication
from newsletter.web.console.auth import Principal, record
from newsletter.web.console.services.common import SAFE_NAME, ConsoleError

__all__ = ["import_images", "import_preview", "learn_import_rules", "publication_choices"]


def import_preview(
    data: bytes,
    hints: dict[int, str],
    number: int | None,
    *,
    name: str = "",
    doc: str = "",
    publication: str = "",
) -> dict[str, Any]:
    """Import a pasted or uploaded brief (text, Word or a web page): outline, summary, Markdown.

    Nothing is stored as an issue; :func:`upload_issue` stores the Markdown once the
    editor is satisfied.  ``hints`` are the editor's reclassifications (line → class).
    A Word or HTML upload is kept under ``var/imports`` by its hash (``doc``) so that a
    re-run keeps its structure, links and images, and saving keeps its images.
    """
    from newsletter.content.documents import read_document
    from newsletter.content.textimport import import_text

    if doc:
        data, name = _kept_import(doc)
    if len(data) > 5_000_000:
        raise coded(ConsoleError, "import.too_large")
    text, source, warnings = read_document(data, name=name)
    if source is not None and not doc:
        doc = _keep_import(data, name)
    rules = _rules(publication) if publication else []
    result = import_text(
        text, front_matter={"number": number}, hints=hints, source=source, rules=rules
    )
    guessed = _next_number(publication) if publication and not number else None
    if guessed and "\nnumber:" not in result.markdown.split("\n---", 1)[0]:
        result = import_text(
            text, front_matter={"number": guessed}, hints=hints, source=source, rules=rules
        )
        result.warnings = [w for w in result.warnings if "未找到期数" not in w]
        result.warnings.append(message("import.number_guessed", number=guessed).line())
    from newsletter.content.parser import parse_issue

    parsed = parse_issue(result.markdown)
    items = [it for sec in parsed.sections for it in sec.items]
    summary = {
        "sections": len(parsed.sections),
        "items": len(items),
        "meta": sum(len(it.meta) for it in items),
        "tables": result.markdown.count("\n|---"),
        "images": len(result.images),
        "links": len(set(re.findall(r"https?://[^\s<>)|]+", result.markdown))),
    }
    return {
        "text": text,
        "markdown": result.markdown,
        "outline": result.outline,
        "reasons": result.reasons,
        "chrome": result.chrome,
        "contents": result.contents,
        "warnings": warnings + result.warnings,
        "script": result.script,
        "hints": hints,
        "doc": doc,
        "kind": source.kind if source is not None else "text",
        "summary": summary,
    }


_DOC_TOKEN = re.compile(r"^[0-9a-f]{64}$")


def _imports_dir() -> Path:
    d = get_settings().var_dir / "imports"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _keep_import(data: bytes, name: str) -> str:
    token = hashlib.sha256(data).hexdigest()
    d = _imports_dir()
    (d / f"{token}.bin").write_bytes(data)
    (d / f"{token}.name").write_text(SAFE_NAME.sub("_", Path(name).name)[:100], "utf-8")
    return token


def _kept_import(token: str) -> tuple[bytes, str]:
    """The document kept by :func:`_keep_import`; the token is checked, never a path."""
    if not _DOC_TOKEN.match(token):
        raise coded(ConsoleError, "import.expired")
    d = _imports_dir()
    try:
        return (d / f"{token}.bin").read_bytes(), (d / f"{token}.name").read_text("utf-8")
    except OSError:
        raise coded(ConsoleError, "import.expired") from None


def import_images(doc: str) -> list[tuple[str, bytes]]:
    """The images of a kept Word or HTML import, for :func:`upload_issue`."""
    if not doc:
        return []
    from newsletter.content.documents import read_document

    data, name = _kept_import(doc)
    _, source, _ = read_document(data, name=name)
    if source is None:
        return []
    return [(f"images/{im.name}", im.data) for im in source.images.values()]


def _next_number(publication: str) -> int | None:
    """The publication's next issue number (its highest plus one), or None without issues."""
    from sqlalchemy import func

    with session_scope() as s:
        pub = s.scalar(select(Publication).where(Publication.slug == publication))
        if pub is None:
            return None
        top = s.scalar(select(func.max(Issue.number)).where(Issue.publication_id == pub.id))
        return int(top) + 1 if top else None


def _rules(publication: str) -> list[tuple[str, str, str]]:
    from newsletter.issues.styles import rules_of

    with session_scope() as s:
        pub = s.scalar(select(Publication).where(Publication.slug == publication))
        if pub is None:
            raise coded(ConsoleError, "publication.unknown", slug=publication)
        return rules_of(s, pub.id)


def learn_import_rules(
    actor: Principal, publication: str, text: str, doc: str, corrections: dict[int, str]
) -> list[tuple[str, str, str]]:
    """Keep an editor's outline corrections as rules of the publication (audited)."""
    from newsletter.content.documents import read_document
    from newsletter.issues.styles import learn

    if doc:
        data, name = _kept_import(doc)
        text = read_document(data, name=name)[0]
    lines = dict(enumerate(text.replace("\r\n", "\n").split("\n"), 1))
    with session_scope() as s:
        pub = s.scalar(select(Publication).where(Publication.slug == publication))
        if pub is None:
            raise coded(ConsoleError, "publication.unknown", slug=publication)
        learnt = learn(s, pub.id, lines, corrections, actor.username)
        if learnt:
            record(s, actor, "import.learn", f"publication:{pub.id}", None, rules=learnt)
        return learnt


def publication_choices() -> list[tuple[str, str]]:
    """``(slug, name)`` of every publication, for the import and upload forms."""
    with session_scope() as s:
        return [(p.slug, p.name) for p in s.scalars(select(Publication).order_by(Publication.id))]
