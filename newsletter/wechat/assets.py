"""Images of an issue on WeChat: each uploaded once per account, remembered by hash.

Guarantees: :func:`ensure_asset` uploads a (hash, kind) to an account at most
once as long as its row exists (two workers racing may both upload; the first
row wins and the other URL is simply unused).  :func:`swap_images` replaces
every ``src="wxasset:{sha256}"`` of the renderer by the WeChat URL, so only
``mmbiz.qpic.cn`` URLs reach WeChat.

External images (``<img src="https://…">`` in the issue) never reach a draft
as they are: WeChat would strip them and leave orphan captions. The publisher
fetches each one with :func:`fetch_image` and uploads it like a local file.
The fetch is guarded, because the URL comes from an uploaded issue: http and
https only, every address the name resolves to must be public (no loopback,
private, link-local or reserved ranges, unless ``allow_private`` is set for a
local test), redirects are followed by hand and checked the same way (at most
3), the body is read up to 1 MB (uploadimg's limit) and must be a PNG or JPEG.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from newsletter.content.model import Issue as Doc
from newsletter.core.db import session_scope
from newsletter.core.resources import resource_path
from newsletter.models.wechat import WeChatAsset
from newsletter.wechat.client import WeChatClient
from newsletter.wechat.errors import WeChatMediaError, error_for
from newsletter.wechat.imagetype import sniff_image

__all__ = [
    "UPLOAD_RULES",
    "Asset",
    "check_image",
    "cover_file",
    "drop_asset",
    "ensure_asset",
    "ensure_asset_bytes",
    "external_images",
    "fetch_image",
    "image_files",
    "sniff_image",
    "swap_images",
]

FETCH_LIMIT = 1_000_000
_EXT_IMG_RE = re.compile(r'<img\b[^>]*?\ssrc\s*=\s*"(https?://[^"]+)"', re.I)
_WECHAT_HOSTS = ("mmbiz.qpic.cn",)

_WX_RE = re.compile(r"wxasset:([0-9a-f]{64})")


#: kind → (endpoint, byte limit, accepted types): body images go to ``media/uploadimg``
#: (jpg/png, ≤ 1 MB), the cover to ``material/add_material?type=image`` (bmp/png/jpeg/gif,
#: ≤ 10 MB), as ``wechat-api.md`` and the fake say.
UPLOAD_RULES: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "content": ("media/uploadimg", 1_000_000, ("jpeg", "png")),
    "thumb": ("material/add_material", 10 * 1024 * 1024, ("jpeg", "png", "gif", "bmp")),
}
_EXT = {"jpeg": "jpg", "png": "png", "gif": "gif", "bmp": "bmp"}
_ZH_KIND = {"content": "正文图片", "thumb": "封面"}
_EN_KIND = {"content": "body images", "thumb": "the cover"}


def check_image(data: bytes, name: str, kind: str, item: tuple[str, str]) -> str:
    """The name to upload ``data`` under (its extension from its real type), or a refusal.

    ``item`` is (中文, English) naming where the image is used (an article, the cover).
    The type comes from the bytes, never the name: a GIF called ``x.jpg`` is a GIF.
    Nothing is converted (Pillow is not a dependency): a file WeChat would refuse is
    refused here, before anything is uploaded, naming the file and the item.
    """
    endpoint, limit, kinds = UPLOAD_RULES[kind]
    fmt = sniff_image(data)
    zh_item, en_item = item
    if fmt is None or fmt not in kinds:
        what, what_en = (fmt.upper(), fmt.upper()) if fmt else ("不是图片", "not an image")
        allowed = "/".join(k.upper() for k in kinds)
        raise WeChatMediaError(
            f"{en_item}: image {name} is {what_en}; {_EN_KIND[kind]} must be {allowed} "
            f"({endpoint}). Convert it and upload the issue again.",
            zh=f"{zh_item}：图片 {name} 是 {what}，{_ZH_KIND[kind]}只能是 {allowed}（{endpoint}），"
            "请转换格式后重新上传期刊",
        )
    if len(data) > limit:
        raise WeChatMediaError(
            f"{en_item}: image {name} is {len(data):,} bytes; {_EN_KIND[kind]} may be at most "
            f"{limit:,} bytes ({endpoint}). Make it smaller and upload the issue again.",
            zh=f"{zh_item}：图片 {name} 有 {len(data):,} 字节，{_ZH_KIND[kind]}最多 {limit:,} 字节"
            f"（{endpoint}），请缩小后重新上传期刊",
        )
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{stem or 'image'}.{_EXT[fmt]}"


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


#: The cover of an issue that has no image at all (a brief imported from plain text):
#: the publication's ``NEWSLETTER_WECHAT_DEFAULT_COVER`` when set, else this one.
DEFAULT_COVER = resource_path("data", "wechat-cover.png")


def cover_file(doc: Doc, base_dir: Path | None, default: Path | None = None) -> Path:
    """The cover: ``cover:`` in the front matter, else the first image, else the default."""
    if doc.cover and base_dir is not None and (base_dir / doc.cover).is_file():
        return base_dir / doc.cover
    files = image_files(doc, base_dir)
    if files:
        return next(iter(files.values()))
    if default is not None:
        if not default.is_file():
            raise WeChatMediaError(
                "the default WeChat cover (NEWSLETTER_WECHAT_DEFAULT_COVER) cannot be read / "
                "默认封面图片无法读取"
            )
        return default
    return DEFAULT_COVER


_NO_ITEM = ("图片", "image")


def ensure_asset(
    client: WeChatClient,
    path: Path,
    kind: str,
    sha256: str | None = None,
    item: tuple[str, str] = _NO_ITEM,
) -> Asset:
    """The account's copy of ``path``: ``content`` → uploadimg URL, ``thumb`` → material."""
    data = path.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise WeChatMediaError(f"{path.name} changed since the issue was parsed; render it again")
    return ensure_asset_bytes(client, data, path.name, kind, item)


def ensure_asset_bytes(
    client: WeChatClient, data: bytes, name: str, kind: str, item: tuple[str, str] = _NO_ITEM
) -> Asset:
    """The account's copy of an image given as bytes (uploaded once per hash).

    The bytes are checked first (:func:`check_image`); a refusal by WeChat (40005 type,
    40009 size) is reported naming the file and the item too.
    """
    upload_name = check_image(data, name, kind, item)
    digest = hashlib.sha256(data).hexdigest()
    found = _find(client.appid, digest, kind)
    if found is not None:
        return found
    try:
        if kind == "content":
            url, media_id = client.upload_image(data, upload_name), None
        else:
            media_id, url = client.add_material(data, upload_name)
    except WeChatMediaError as exc:
        if exc.errcode not in (40005, 40009):
            raise
        raise error_for(
            exc.errcode, exc.errmsg, exc.api, detail=(f"{item[0]} {name}", f"{item[1]} {name}")
        ) from None
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


def external_images(html: str) -> list[str]:
    """The external image URLs of rendered content (not hosted by WeChat), in order."""
    out: list[str] = []
    for url in _EXT_IMG_RE.findall(html):
        host = (urlsplit(url).hostname or "").lower()
        if host not in _WECHAT_HOSTS and url not in out:
            out.append(url)
    return out


def _check_scheme(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WeChatMediaError(f"image URL {url[:200]!r} is not http(s) / 图片地址无效")


def fetch_image(
    url: str, *, allow_private: bool = False, timeout: float = 10.0, limit: int = FETCH_LIMIT
) -> tuple[bytes, str]:
    """(bytes, file name) of an external PNG or JPEG, fetched under the rules above.

    Each hop is resolved once, every address checked, and the connection made to the
    address checked (:class:`~newsletter.core.safety.pinned.PinnedTransport`): a name
    cannot answer the check with a public address and the connection with an internal one.
    """
    from newsletter.core.safety.pinned import AddressRefused, pinned_client

    current = url
    with pinned_client(
        allow_private=allow_private, timeout=timeout, follow_redirects=False
    ) as http:
        for _ in range(4):
            _check_scheme(current)
            host = urlsplit(current).hostname
            try:
                with http.stream("GET", current, headers={"Accept": "image/*"}) as resp:
                    if resp.is_redirect:
                        current = urljoin(current, resp.headers.get("location", ""))
                        continue
                    if resp.status_code != 200:
                        raise WeChatMediaError(
                            f"image {url[:200]} answered HTTP {resp.status_code} / 图片无法下载"
                        )
                    data = b""
                    for chunk in resp.iter_bytes():
                        data += chunk
                        if len(data) > limit:
                            raise WeChatMediaError(
                                f"image {url[:200]} is larger than {limit:,} bytes / 图片过大"
                            )
            except AddressRefused as exc:
                if not exc.resolved:
                    raise WeChatMediaError(
                        f"image host {host!r} cannot be resolved / 图片主机无法解析"
                    ) from None
                raise WeChatMediaError(
                    f"image host {host!r} is not a public address; refused / "
                    "图片主机不是公网地址，拒绝抓取"
                ) from None
            except httpx.HTTPError as exc:
                raise WeChatMediaError(
                    f"image {url[:200]} cannot be fetched ({type(exc).__name__}) / 图片无法下载"
                ) from None
            if data.startswith(b"\x89PNG"):
                return data, "image.png"
            if data.startswith(b"\xff\xd8"):
                return data, "image.jpg"
            raise WeChatMediaError(f"image {url[:200]} is not a PNG or JPEG / 图片格式不支持")
    raise WeChatMediaError(f"image {url[:200]}: too many redirects / 重定向过多")
