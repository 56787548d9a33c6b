"""Sealed issues: what was approved is what goes out.

Approval seals a version of the issue. The **seal** is a SHA-256 over

* the source text (as stored, UTF-8),
* the renderer version (``RENDERER_VERSION``, with the publication's zh-Hant table), and
* every asset the source references: each body image and the cover, by kind, path as
  written and the SHA-256 of its bytes

(:func:`seal_digest`: every field length-prefixed, so no two different inputs share an
encoding). The assets' bytes are copied at approval into a content-addressed store,
``{var_dir}/blobs/sha256/<aa>/<sha256>`` (:func:`put_blob`), and the version is a row of
``issue_seal``.

From then on every use reads the sealed version, never the working folder: the renderer
gets the images' hashes from the seal (so e-mail and the web archive point at
``/media/<sha256>``, served from the store only when the bytes hash to the name), and the
WeChat publisher uploads the stored bytes. :func:`current_seal` verifies the seal before
each use: the source and the record must hash to the seal, and every blob to its name.
A mismatch (someone edited a blob or the stored source) refuses with one line
(:class:`~newsletter.core.errors.SealError` ``seal-broken``) and :func:`report_broken`
alerts ops.

Any change to the source or to an asset makes a new version: a re-upload whose source or
images differ from the seal sends an approved issue back to review
(:func:`newsletter.issues.store.create_issue`), where four-eyes applies again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.content.model import Issue as Doc
from newsletter.content.parser import parse_issue
from newsletter.core.audit import audit
from newsletter.core.config import get_settings
from newsletter.core.errors import SealError
from newsletter.core.safety.safepath import contained_file
from newsletter.models import Issue, IssueSeal

__all__ = [
    "SEAL_FORMAT",
    "Asset",
    "SealedVersion",
    "blob_path",
    "collect_assets",
    "current_seal",
    "put_blob",
    "read_blob",
    "report_broken",
    "seal_digest",
    "seal_info",
    "seal_issue",
    "seal_of",
    "working_digest",
]

log = logging.getLogger(__name__)

#: The first field of every seal: a new encoding gets a new name, never a silent change.
SEAL_FORMAT = "newsletter-seal/1"
KINDS = ("image", "cover")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")

#: Sends the alert of a broken seal: ``(session, event, subject, body, key=…)``.
#: :mod:`newsletter.delivery.alerts` installs its ``notify`` here (webhook, ops mail,
#: console banner); without it the alert is the console banner only (an audit row).
alert_sender: Callable[..., object] | None = None


@dataclass(frozen=True, slots=True)
class Asset:
    kind: str  # "image" (in the body) or "cover"
    ref: str  # the path as written in the source
    sha256: str
    size: int

    def row(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "sha256": self.sha256, "size": self.size}


# -- the seal -----------------------------------------------------------------------


def _is_url(src: str) -> bool:
    return "://" in src or src.startswith("//") or _SCHEME.match(src) is not None


def seal_digest(source_text: str, renderer_version: str, assets: Iterable[Asset]) -> str:
    """The seal of a version: SHA-256 over the length-prefixed fields, assets in order."""
    h = hashlib.sha256()

    def put(data: bytes) -> None:
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)

    put(SEAL_FORMAT.encode())
    put(source_text.encode("utf-8", "surrogatepass"))
    put(renderer_version.encode())
    ordered = sorted(assets, key=lambda a: (a.kind, a.ref))
    put(str(len(ordered)).encode())
    for a in ordered:
        put(a.kind.encode())
        put(a.ref.encode("utf-8", "surrogatepass"))
        put(bytes.fromhex(a.sha256))
    return h.hexdigest()


def seal_of(source_text: str, renderer_version: str, files: Mapping[tuple[str, str], bytes]) -> str:
    """The seal of a source, a renderer version and asset bytes by ``(kind, path)``."""
    return seal_digest(
        source_text,
        renderer_version,
        [Asset(k, r, hashlib.sha256(b).hexdigest(), len(b)) for (k, r), b in files.items()],
    )


def collect_assets(doc: Doc, base_dir: Path | None) -> list[tuple[Asset, bytes]]:
    """Every local asset the source references, with its bytes, read once each.

    External images (http/https) are not sealed: only their URL, which is in the source.
    A local file that cannot be read refuses (``seal-asset``): nothing is sealed.
    """
    refs: list[tuple[str, str, int | None]] = [
        ("image", im.src, im.line or None) for im in doc.images if not _is_url(im.src)
    ]
    if doc.cover and not _is_url(doc.cover):
        refs.append(("cover", doc.cover, 1))
    out: dict[tuple[str, str], tuple[Asset, bytes]] = {}
    for kind, ref, line in refs:
        if (kind, ref) in out:
            continue
        found = contained_file(base_dir, ref) if base_dir is not None else None
        try:
            data = found.read_bytes() if found is not None else None
        except OSError:
            data = None
        if data is None:
            where = f"（第 {line} 行）" if line else ""
            raise SealError(
                "seal-asset",
                f"无法读取{'封面' if kind == 'cover' else '图片'} {ref!r}{where}，未封存",
                f"{kind} {ref!r} cannot be read; nothing was sealed",
                ref=ref,
            )
        out[(kind, ref)] = (Asset(kind, ref, hashlib.sha256(data).hexdigest(), len(data)), data)
    return list(out.values())


def working_digest(source_text: str, base_dir: Path | None, renderer_version: str) -> str | None:
    """The seal the working folder would get now; None when an asset cannot be read."""
    doc = parse_issue(source_text, base_dir=base_dir)
    try:
        assets = collect_assets(doc, base_dir)
    except SealError:
        return None
    return seal_digest(source_text, renderer_version, [a for a, _ in assets])


# -- the blob store -------------------------------------------------------------------


def _blob_root() -> Path:
    cfg = get_settings()
    return (cfg.blob_dir or cfg.var_dir / "blobs") / "sha256"


def blob_path(sha256: str) -> Path:
    """Where the store keeps the bytes whose SHA-256 is ``sha256``."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a SHA-256: {sha256[:80]!r}")
    return _blob_root() / sha256[:2] / sha256


def put_blob(data: bytes) -> str:
    """Store ``data`` by its SHA-256 (a stored copy that no longer matches is replaced)."""
    digest = hashlib.sha256(data).hexdigest()
    path = blob_path(digest)
    if read_blob(digest) is not None:
        return digest
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{digest}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return digest


def _blob_exists(sha256: str) -> bool:
    try:
        return blob_path(sha256).exists()
    except (OSError, ValueError):
        return False


def read_blob(sha256: str) -> bytes | None:
    """The stored bytes of ``sha256``; None when missing, not a regular file, or altered."""
    try:
        path = blob_path(sha256)
        if path.is_symlink() or not path.is_file():
            return None
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


# -- sealing and using a version --------------------------------------------------------


@dataclass(slots=True)
class SealedVersion:
    """A verified approved version: its seal, its assets and their bytes."""

    issue_id: int
    number: int
    version: int
    digest: str
    renderer_version: str
    sealed_by: str
    sealed_at: dt.datetime
    assets: list[Asset]
    blobs: dict[str, bytes] = field(default_factory=dict)

    def images(self) -> dict[str, str]:
        """Body image path as written → SHA-256 (what the parser gets instead of files)."""
        return {a.ref: a.sha256 for a in self.assets if a.kind == "image"}

    def cover(self) -> Asset | None:
        return next((a for a in self.assets if a.kind == "cover"), None)

    def parse(self, source_text: str) -> Doc:
        """The approved source parsed with the sealed images (no file is read)."""
        return parse_issue(source_text, sealed_images=self.images())


def seal_issue(session: Session, issue: Issue, actor: str, renderer_version: str) -> IssueSeal:
    """Seal the issue's current source and assets as a new version (approval calls this).

    The bytes are read once, stored in the blob store, and the version is recorded;
    ``issue.sealed_version`` names it.
    """
    base = Path(issue.base_dir) if issue.base_dir else None
    doc = parse_issue(issue.source_text, base_dir=base)
    collected = collect_assets(doc, base)
    for _asset, data in collected:
        put_blob(data)
    assets = [a for a, _ in collected]
    last = session.scalar(select(func.max(IssueSeal.version)).where(IssueSeal.issue_id == issue.id))
    row = IssueSeal(
        issue_id=issue.id,
        version=(last or 0) + 1,
        digest=seal_digest(issue.source_text, renderer_version, assets),
        source_hash=issue.source_hash,
        renderer_version=renderer_version,
        assets=[a.row() for a in assets],
        sealed_by=actor,
    )
    session.add(row)
    session.flush()
    issue.sealed_version = row.version
    return row


def _row(session: Session, issue: Issue) -> IssueSeal | None:
    if issue.sealed_version is None:
        return None
    return session.scalar(
        select(IssueSeal).where(
            IssueSeal.issue_id == issue.id, IssueSeal.version == issue.sealed_version
        )
    )


def current_seal(session: Session, issue: Issue, renderer_version: str) -> SealedVersion:
    """The issue's approved version, verified; raises :class:`SealError` otherwise.

    Verified: the stored source, the renderer version and the asset list hash to the
    seal, every blob is in the store and hashes to its name, and the renderer is the one
    the version was sealed with.
    """
    row = _row(session, issue)
    if row is None:
        raise SealError(
            "seal-missing",
            f"第{issue.number}期没有封存的审核版本（在封存功能之前审核），"
            f"请运行 newsletter issue approve '#{issue.number}' 重新审核",
            f"issue #{issue.number} has no sealed approved version (approved before "
            f"sealing existed); approve it again: newsletter issue approve '#{issue.number}'",
        )
    assets = [Asset(a["kind"], a["ref"], a["sha256"], int(a["size"])) for a in row.assets]
    sealed = SealedVersion(
        issue_id=issue.id, number=issue.number, version=row.version, digest=row.digest,
        renderer_version=row.renderer_version, sealed_by=row.sealed_by,
        sealed_at=row.sealed_at, assets=assets,
    )  # fmt: skip
    if seal_digest(issue.source_text, row.renderer_version, assets) != row.digest:
        raise _broken(sealed, "源文件记录", "the stored source or the version record")
    for a in assets:
        data = read_blob(a.sha256)
        if data is None and not _blob_exists(a.sha256):
            raise SealError(
                "seal-broken",
                f"第{issue.number}期第 {row.version} 版封存的文件 {a.ref} 在存储中找不到"
                f"（{_blob_root().parent}；各进程须共用同一个存储，见 NEWSLETTER_BLOB_DIR），拒绝使用，已通知运维",
                f"issue #{issue.number} version {row.version}: the sealed file {a.ref} is missing "
                "from the blob store (every process must share it: NEWSLETTER_BLOB_DIR); "
                "refused, ops alerted",
                issue_id=issue.id,
                number=issue.number,
                version=row.version,
                seal=row.digest,
                blob=a.sha256,
            )
        if data is None:
            raise _broken(sealed, a.ref, a.ref, blob=a.sha256)
        sealed.blobs[a.sha256] = data
    if row.renderer_version != renderer_version:
        raise SealError(
            "seal-stale",
            f"第{issue.number}期第 {row.version} 版以渲染器 {row.renderer_version} 审核，"
            f"现为 {renderer_version}；请重新上传并审核",
            f"issue #{issue.number} version {row.version} was approved with renderer "
            f"{row.renderer_version}, now {renderer_version}; upload it again and approve it",
        )
    return sealed


def _broken(sealed: SealedVersion, what_zh: str, what_en: str, **detail: object) -> SealError:
    return SealError(
        "seal-broken",
        f"第{sealed.number}期第 {sealed.version} 版的封存内容已被改动（{what_zh}），拒绝使用，"
        "已通知运维",
        f"issue #{sealed.number} version {sealed.version} no longer matches its seal "
        f"({what_en}); refused, ops alerted",
        issue_id=sealed.issue_id,
        number=sealed.number,
        version=sealed.version,
        seal=sealed.digest,
        **detail,
    )


def report_broken(exc: SealError) -> None:
    """Alert ops of a broken seal, once per version and blob, in a transaction of its own
    (call it after the refused work's transaction has ended). Never raises."""
    if exc.code != "seal-broken":
        return
    from newsletter.core.db import session_scope

    d = exc.detail
    key = f"issue:{d.get('issue_id')}:seal:{d.get('version')}:{d.get('blob') or 'record'}"[:200]
    subject = f"封存内容被改动 / sealed issue altered: #{d.get('number')} v{d.get('version')}"
    body = f"{exc}\nseal {d.get('seal')}\nblob {d.get('blob') or '-'}"
    log.error("seal broken: %s", exc)
    try:
        with session_scope() as s:
            if alert_sender is not None:
                alert_sender(s, "seal_broken", subject, body, key=key, once=True)
            else:
                audit(s, "system", "notify.seal_broken", key, subject=subject, body=body)
    except Exception:  # an alert never hides the refusal it reports
        log.exception("the alert of a broken seal could not be recorded")


def seal_info(session: Session, issue: Issue) -> dict[str, Any] | None:
    """Which version is sealed, by whom and when (the console's issue page)."""
    row = _row(session, issue)
    if row is None:
        return None
    return {
        "version": row.version,
        "digest": row.digest,
        "sealed_by": row.sealed_by,
        "sealed_at": row.sealed_at.isoformat(),
        "renderer_version": row.renderer_version,
        "assets": row.assets,
    }
