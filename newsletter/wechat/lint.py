"""WeChat's lint check: every external image of the issue must be fetchable.

WeChat strips images that are not hosted by it, so the publisher fetches each
external image and uploads it (:func:`.assets.fetch_image`). An image that
cannot be fetched, or is not a PNG or JPEG under 1 MB, would fail the WeChat
channel at publish time; ``issue lint`` reports it as an error first, when the
WeChat channel is configured. Local images and the cover are checked the same way as
the publisher checks them (:func:`.assets.check_image`: the type from the bytes, the
size limit of the endpoint each goes to).
"""

from __future__ import annotations

from pathlib import Path

from newsletter.content.lint import LintMessage
from newsletter.content.model import Issue as Doc
from newsletter.core.safety.safepath import reference_problem
from newsletter.core.wechat_settings import get_wechat_settings
from newsletter.wechat.assets import check_image, fetch_image
from newsletter.wechat.errors import WeChatMediaError

__all__ = ["local_images", "remote_images"]


def remote_images(doc: Doc) -> list[LintMessage]:
    """One error per external image that the publisher could not upload to WeChat."""
    wx = get_wechat_settings()
    out: list[LintMessage] = []
    seen: set[str] = set()
    for img in doc.images:
        src = img.src
        if not src.lower().startswith(("http://", "https://")) or src in seen:
            continue
        seen.add(src)
        try:
            fetch_image(src, allow_private=wx.fetch_private_images, timeout=5.0)
        except WeChatMediaError as exc:
            out.append(LintMessage("error", img.line or None, "wechat-image", str(exc)))
    return out


def local_images(doc: Doc, base_dir: Path | None) -> list[LintMessage]:
    """One error per local image (or the cover) WeChat would refuse: wrong type or too big."""
    if base_dir is None:
        return []
    out: list[LintMessage] = []
    refs = [(img.src, img.line, "content") for img in doc.images]
    if doc.cover:
        refs.append((doc.cover, 0, "thumb"))
    for ref, line, kind in refs:
        if ref.lower().startswith(("http://", "https://")) or reference_problem(base_dir, ref):
            continue  # external (above) or refused by the path lint
        try:
            data = (base_dir / ref).read_bytes()
        except OSError:
            continue  # the path lint reports a missing file
        item = (f"第{line}行", f"line {line}") if line else ("封面", "the cover")
        try:
            check_image(data, Path(ref).name, kind, item)
        except WeChatMediaError as exc:
            out.append(LintMessage("error", line or None, "wechat-image", str(exc)))
    return out
