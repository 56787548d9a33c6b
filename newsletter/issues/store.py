"""Issues: import a source file, keep it, render it once per variant.

``render_issue`` is the only place that runs the renderers for sending.  It
stores each output in the ``rendition`` table with its content hash, size and
the renderer version, and the issue's links in the ``link`` table (click
tracking resolves link ids there).  It is idempotent: when renditions for the
current key and renderer version exist, nothing is rendered again.  The key is
the seal of the approved version once the issue is approved (the renditions are
made from the sealed source and images, :mod:`newsletter.issues.seal`), the
source hash before.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.content.model import Issue as Doc
from newsletter.content.parser import load_issue_source, parse_issue
from newsletter.content.variants import to_variant
from newsletter.core.audit import audit
from newsletter.core.config import get_settings
from newsletter.core.errors import IssueFormatError, NotFound, StateError
from newsletter.core.safety.safepath import contained_file, media_dir, reference_problem
from newsletter.core.safety.urlpolicy import is_allowed
from newsletter.issues.seal import SealedVersion, current_seal, working_digest
from newsletter.models import Issue, IssueSeal, Link, Publication, Rendition, utcnow

__all__ = [
    "RELEASED",
    "RENDERER_VERSION",
    "VARIANTS",
    "context_for",
    "create_issue",
    "choose_publication",
    "ensure_publication",
    "get_issue",
    "lock_issue",
    "parse_for_use",
    "parse_stored",
    "publication_by_slug",
    "render_issue",
    "renderer_version",
    "sealed_version",
]

RENDERER_VERSION = "1"
#: Issue states whose content may leave the console: they use the sealed version only.
RELEASED = frozenset({"approved", "scheduled", "sent"})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
VARIANTS = ("zh-Hans", "zh-Hant")


def _slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s or "weekly"


def ensure_publication(session: Session, name: str, slug: str | None = None) -> Publication:
    """Find a publication by slug (derived from the name if absent), creating it with defaults."""
    cfg = get_settings()
    if not slug:
        slug = (
            _slug(name) if name.isascii() else "pub-" + hashlib.sha1(name.encode()).hexdigest()[:8]
        )
    pub = session.scalar(select(Publication).where(Publication.slug == slug))
    if pub is None:
        pub = Publication(
            slug=slug,
            name=name,
            from_name=cfg.from_name,  # configured, never taken from an imported title
            from_address=cfg.from_address,
            list_id_domain=cfg.list_id_domain,
            postal_address=cfg.postal_address,
            timezone="Asia/Shanghai",
            track_opens=cfg.track_opens,
            track_clicks=cfg.track_clicks,
        )
        session.add(pub)
        session.flush()
    return pub


def publication_by_slug(session: Session, slug: str) -> Publication:
    pub = session.scalar(select(Publication).where(Publication.slug == slug))
    if pub is None:
        from newsletter.core.catalogue import coded

        raise coded(NotFound, "publication.unknown", slug=slug)
    return pub


def choose_publication(session: Session, name: str, slug: str | None = None) -> Publication:
    """The publication an issue goes to; one is never invented from an issue's title.

    A slug names an existing one. Without a slug: the only publication there is; else
    the one whose name or slug the source's ``publication:`` gives. Only the very first
    import of an installation creates one (with the slug asked for, if any); after that
    a publication is created on purpose (:mod:`newsletter.issues.publications`).
    """
    pubs = list(session.scalars(select(Publication).order_by(Publication.id)))
    if not pubs:
        return ensure_publication(session, name, slug)
    if slug:
        return publication_by_slug(session, slug)
    if len(pubs) == 1:
        return pubs[0]
    for pub in pubs:
        if name and name in (pub.name, pub.slug):
            return pub
    from newsletter.core.catalogue import coded

    raise coded(
        IssueFormatError,
        "publication.choose",
        where={"line": 1},
        slugs=", ".join(p.slug for p in pubs),
    )


def create_issue(
    session: Session,
    path: str | Path,
    *,
    publication_slug: str | None = None,
    actor: str | None = None,
) -> tuple[Issue, list[str]]:
    """Parse ``path`` and store it as a draft issue (or update the draft with that number)."""
    path = Path(path)
    doc, source_text, warnings = load_issue_source(path)
    if doc.number <= 0:
        raise IssueFormatError(
            "该期没有期数，请在 front matter 中写 number: N / the issue has no number; "
            "add 'number: N' to its front matter before adding it",
            line=1,
            path=path.name,
        )
    pub = choose_publication(session, doc.publication, publication_slug)
    source_hash = doc.source_hash  # SHA-256 of the file's bytes
    existing = session.scalar(
        select(Issue).where(Issue.publication_id == pub.id, Issue.number == doc.number)
    )
    refuse_unsafe_references(doc, path.parent)
    store_media(doc, path.parent)
    if existing is not None:
        sealed = _sealed_digest(session, existing)
        if sealed is None and existing.source_hash == source_hash:
            return existing, warnings
        if sealed is not None and sealed == working_digest(
            source_text, path.parent, renderer_version(pub)
        ):
            return existing, warnings  # the approved version, source and assets alike
        if existing.status in ("scheduled", "sent"):
            raise StateError(
                f"第{doc.number}期已{'排期' if existing.status == 'scheduled' else '发送'}，"
                f"源文件或图片不能再改 / issue {doc.number} is {existing.status}; its source "
                "and images can no longer be edited"
            )
        existing.source_text = source_text
        existing.source_hash = source_hash
        existing.title = doc.title
        existing.period = doc.period
        existing.base_dir = str(path.parent.resolve())
        if existing.status == "approved":
            # A new version (source or any asset): back to review, four-eyes again.
            audit(session, actor or "cli", "issue.reopen", f"issue:{existing.id}",
                  sealed_version=existing.sealed_version, source_hash=source_hash)  # fmt: skip
            existing.status = "in_review"
            existing.approved_at = None
            existing.approved_by = None
        existing.sealed_version = None
        existing.updated_at = utcnow()
        existing.updated_by = actor
        _keep_version(session, existing, actor)
        return existing, warnings
    issue = Issue(
        publication_id=pub.id,
        number=doc.number,
        title=doc.title,
        period=doc.period,
        source_text=source_text,
        source_hash=source_hash,
        base_dir=str(path.parent.resolve()),
        status="draft",
        created_by=actor,
        updated_by=actor,
    )
    session.add(issue)
    session.flush()
    _keep_version(session, issue, actor)
    return issue, warnings


def _keep_version(session: Session, issue: Issue, actor: str | None) -> None:
    """Keep the issue's current source as its next version (review compares versions)."""
    from sqlalchemy import func

    from newsletter.models import IssueVersion

    last = session.scalar(
        select(func.max(IssueVersion.version)).where(IssueVersion.issue_id == issue.id)
    )
    session.add(
        IssueVersion(
            issue_id=issue.id,
            version=(last or 0) + 1,
            source_text=issue.source_text,
            source_hash=issue.source_hash,
            created_by=actor,
        )
    )
    session.flush()


def refuse_unsafe_references(doc: Doc, base_dir: Path) -> None:
    """Refuse an issue whose image or cover paths leave its folder (or the media folder)."""
    refs = [(img.src, img.line or None) for img in doc.images]
    if doc.cover:
        refs.append((doc.cover, 1))
    for src, line in refs:
        if "://" in src or src.startswith("//") or _SCHEME.match(src):
            if not is_allowed(src):
                raise IssueFormatError(
                    f"image {src!r} is not an http(s) URL / 图片地址不是 http(s) 链接", line=line
                )
            continue
        problem = reference_problem(base_dir, src)
        if problem is not None:
            raise IssueFormatError(f"image {src!r} {problem}", line=line)


def store_media(doc: Doc, base_dir: Path) -> int:
    """Register the issue's local images in ``var/media/<sha256>`` (served at /media/<sha256>).

    Only a file inside the issue's folder (or the media folder), whose bytes
    are an image and hash to the recorded sha256, is copied.  The media
    folder is the registry: ``/media/`` serves nothing else.
    """
    media = media_dir()
    n = 0
    for img in [*doc.images]:
        if not img.sha256 or "://" in img.src:
            continue
        src = contained_file(base_dir, img.src)
        target = media / img.sha256
        if src is None or target.exists():
            continue
        data = src.read_bytes()
        if image_type(data) is None or hashlib.sha256(data).hexdigest() != img.sha256:
            continue
        media.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        n += 1
    return n


def image_type(data: bytes) -> str | None:
    """The MIME type of an image we serve, from its first bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def lock_issue(session: Session, issue: Issue) -> Issue:
    """Hold ``issue``'s row until the end of the transaction and read it again.

    A step that checks the issue and then acts on it takes this first: moving it to
    another publication ("no sends yet") and creating or scheduling a send of it
    ("approved") would otherwise both pass their checks at once, and leave a send of one
    publication for an issue in review in another."""
    session.execute(select(Issue.id).where(Issue.id == issue.id).with_for_update())
    session.refresh(issue)
    return issue


def get_issue(session: Session, ref: str | int, publication_slug: str | None = None) -> Issue:
    """Find an issue by database id or by its number (``#47`` or ``47``)."""
    q = select(Issue)
    text = str(ref).strip()
    digits = text[1:] if text.startswith("#") else text
    if not digits.isascii() or not digits.isdigit() or int(digits) >= 2**31:
        raise NotFound(
            f"issue {text!r}: expected an id or #number (a whole number below 2147483648) "
            "/ 期刊编号无效"
        )
    if text.startswith("#"):
        q = q.where(Issue.number == int(digits))
    else:
        q = q.where(Issue.id == int(digits))
    if publication_slug:
        q = q.join(Publication).where(Publication.slug == publication_slug)
    issue = session.scalars(q.order_by(Issue.id.desc())).first()
    if issue is None:
        raise NotFound(f"issue {ref} does not exist / 期刊不存在")
    return issue


def context_for(pub: Publication) -> Any:
    from newsletter.render.context import RenderContext

    cfg = get_settings()
    return RenderContext(
        base_url=cfg.base_url.rstrip("/"),
        publication_name=pub.name,
        publication_slug=pub.slug,
        postal_address=pub.postal_address,
        sender_name=pub.from_name,
        track_opens=pub.track_opens,
        track_clicks=pub.track_clicks,
        email_budget_bytes=cfg.html_budget_bytes,
        wechat_qr=cfg.wechat_subscribe_qr,
    )


def parse_stored(issue: Issue) -> Doc:
    """The stored source with the images of the working folder (drafts, previews, lint)."""
    base = Path(issue.base_dir) if issue.base_dir else None
    return parse_issue(issue.source_text, base_dir=base)


def renderer_version(pub: Publication) -> str:
    """The renderer's version for ``pub``: the zh-Hant table is part of what is rendered."""
    table = pub.zh_hant_table or "s2t"
    return RENDERER_VERSION if table == "s2t" else f"{RENDERER_VERSION}:{table}"


def _sealed_digest(session: Session, issue: Issue) -> str | None:
    if issue.sealed_version is None:
        return None
    return session.scalar(
        select(IssueSeal.digest).where(
            IssueSeal.issue_id == issue.id, IssueSeal.version == issue.sealed_version
        )
    )


def sealed_version(session: Session, issue: Issue) -> SealedVersion | None:
    """The verified approved version of an approved, scheduled or sent issue; None for a
    draft or an issue in review. Raises :class:`~newsletter.core.errors.SealError` when
    the issue is released but its seal is missing, stale or broken."""
    if issue.status not in RELEASED and issue.sealed_version is None:
        return None
    pub = session.get(Publication, issue.publication_id)
    assert pub is not None
    return current_seal(session, issue, renderer_version(pub))


def parse_for_use(session: Session, issue: Issue) -> Doc:
    """What goes out: the sealed version once approved, else the working folder."""
    sealed = sealed_version(session, issue)
    return sealed.parse(issue.source_text) if sealed is not None else parse_stored(issue)


def render_issue(session: Session, issue_id: int, *, force: bool = False) -> dict[str, Any]:
    """Render every channel for both variants and store the renditions. Returns the report.

    Channels render independently: a WeChat error is in the report and leaves
    the email and web renditions in place, so the email send never waits on
    WeChat. An email error raises (:class:`~.render.errors.RenderError`).
    """
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFound(f"issue {issue_id} does not exist")
    pub = session.get(Publication, issue.publication_id)
    assert pub is not None
    # the zh-Hant table is part of what was rendered: changing it renders again
    table = pub.zh_hant_table or "s2t"
    version = renderer_version(pub)
    # Once approved, only the sealed version is rendered (verified first): its key is the
    # seal, so renditions of the working folder are never used for it.
    sealed = sealed_version(session, issue)
    key = sealed.digest if sealed is not None else issue.source_hash
    have = session.execute(  # (the hashes only: every send's start asks this)
        select(Rendition.source_hash, Rendition.renderer_version).where(
            Rendition.issue_id == issue_id, Rendition.output == "email_html"
        )
    ).all()
    if not force and len(have) == len(VARIANTS) and all(h == key and v == version for h, v in have):
        return {"cached": True}
    # Imported only to render (the renderer's imports cost a worker ~0.1 s the first time)
    from newsletter.issues.archive import index_issue
    from newsletter.render import render_channels
    from newsletter.render.errors import RenderError

    ctx = context_for(pub)
    doc = sealed.parse(issue.source_text) if sealed is not None else parse_stored(issue)
    session.execute(delete(Rendition).where(Rendition.issue_id == issue_id))
    session.execute(delete(Link).where(Link.issue_id == issue_id))
    for link in doc.links:
        session.add(
            Link(issue_id=issue_id, position=link.position, url=link.url, text=link.text[:500])
        )
    reports: dict[str, Any] = {}
    for variant in VARIANTS:
        vdoc = to_variant(doc, variant, table=table)
        index_issue(session, issue_id, vdoc, variant)
        result = render_channels(vdoc, ctx)
        if result.email is None:
            raise RenderError(f"{variant}: {result.errors.get('email', 'email did not render')}")
        email = result.email
        outputs: dict[str, tuple[str, str | None]] = {
            "email_html": (email.html, email.mode),
            "email_text": (email.text, email.mode),
        }
        if result.web is not None:
            outputs["web"] = (result.web, None)
        articles = result.wechat or []
        for i, art in enumerate(articles, start=1):
            outputs[f"wechat-{i}"] = (art.content, None)
        for output, (body, mode) in outputs.items():
            session.add(
                Rendition(
                    issue_id=issue_id,
                    variant=variant,
                    output=output,
                    source_hash=key,
                    content_hash=hashlib.sha256(body.encode()).hexdigest(),
                    size_bytes=len(body.encode()),
                    size_chars=len(body),
                    renderer_version=version,
                    mode=mode,
                    subject=email.subject
                    if output.startswith("email")
                    else (
                        articles[int(output.split("-")[1]) - 1].title
                        if output.startswith("wechat")
                        else vdoc.title
                    ),
                    body=body,
                )
            )
        reports[variant] = result.report()
    session.flush()
    return reports
