"""WeChat's lint check: every external image of the issue must be fetchable.

WeChat strips images that are not hosted by it, so the publisher fetches each
external image and uploads it (:func:`.assets.fetch_image`). An image that
cannot be fetched, or is not a PNG or JPEG under 1 MB, would fail the WeChat
channel at publish time; ``issue lint`` reports it as an error first, when the
WeChat channel is configured.
"""

from __future__ import annotations

from newsletter.content.lint import LintMessage
from newsletter.content.model import Issue as Doc
from newsletter.core.wechat_settings import get_wechat_settings
from newsletter.wechat.assets import fetch_image
from newsletter.wechat.errors import WeChatMediaError

__all__ = ["remote_images"]


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
