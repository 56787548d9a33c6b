"""Images of an issue on WeChat: each uploaded once per account, remembered by hash.

Guarantees: :func:`ensure_asset` uploads a (hash, kind) to an account at most
once as long as its row exists (two workers racing may both upload; the first
row wins and the other URL is simply unused).  :func:`swap_images` replaces
every ``src="wxasset:{sha256}"`` of the renderer by the WeChat URL, so only
``mmbiz.qpic.cn`` URLs reach WeChat.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from newsletter.content.model import Issue as Doc
from newsletter.db import session_scope

from .client import WeChatClient
from .errors import WeChatMediaError
from .models import WeChatAsset

__all__ = ["Asset", "cover_file", "drop_asset", "ensure_asset", "image_files", "swap_images"]

_WX_RE = re.compile(r"wxasset:([0-9a-f]{64})")


@dataclass(frozen=True)
class Asset:
    sha256: str
    kind: str
    url: str
    media_id: str | None


def image_files(doc: Doc, base_dir: Path | None) -> dict[str, Path]:
    """sha256 → file of every readable image of the issue."""
    out: dict[str, Path] = {}
    for im in doc.images:
        if im.sha256 and base_dir is not None:
            out.setdefault(im.sha256, base_dir / im.src)
    return out


def cover_file(doc: Doc, base_dir: Path | None) -> Path:
    """The cover (``cover:`` in the front matter), else the first image; else an error."""
    if doc.cover and base_dir is not None and (base_dir / doc.cover).is_file():
        return base_dir / doc.cover
    files = image_files(doc, base_dir)
    if files:
        return next(iter(files.values()))
    raise WeChatMediaError(
        f"issue {doc.number} has no cover image: WeChat needs one "
        "(thumb_media_id). Add `cover: images/….png` to the front matter."
    )


def ensure_asset(client: WeChatClient, path: Path, kind: str, sha256: str | None = None) -> Asset:
    """The account's copy of ``path``: ``content`` → uploadimg URL, ``thumb`` → material."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise WeChatMediaError(f"{path} changed since the issue was parsed; render it again")
    found = _find(client.appid, digest, kind)
    if found is not None:
        return found
    if kind == "content":
        url, media_id = client.upload_image(data, path.name), None
    else:
        media_id, url = client.add_material(data, path.name)
    try:
        with session_scope() as s:
            s.add(
                WeChatAsset(
                    appid=client.appid,
                    sha256=digest,
                    kind=kind,
                    url=url,
                    media_id=media_id,
                    size_bytes=len(data),
                )
            )
    except IntegrityError:
        pass  # another worker stored it first; use theirs
    stored = _find(client.appid, digest, kind)
    assert stored is not None
    return stored


def drop_asset(appid: str, sha256: str, kind: str) -> None:
    """Forget an asset WeChat no longer knows (40007), so the next call re-uploads it."""
    with session_scope() as s:
        s.execute(
            delete(WeChatAsset).where(
                WeChatAsset.appid == appid, WeChatAsset.sha256 == sha256, WeChatAsset.kind == kind
            )
        )


def _find(appid: str, sha256: str, kind: str) -> Asset | None:
    with session_scope() as s:
        row = s.scalar(
            select(WeChatAsset).where(
                WeChatAsset.appid == appid, WeChatAsset.sha256 == sha256, WeChatAsset.kind == kind
            )
        )
        return None if row is None else Asset(row.sha256, row.kind, row.url, row.media_id)


def swap_images(content: str, urls: dict[str, str]) -> str:
    """Replace ``wxasset:{sha256}`` by WeChat URLs; an unknown hash is an error."""

    def sub(m: re.Match[str]) -> str:
        try:
            return urls[m.group(1)]
        except KeyError:
            raise WeChatMediaError(f"image {m.group(1)[:12]}… was not uploaded") from None

    return _WX_RE.sub(sub, content)
