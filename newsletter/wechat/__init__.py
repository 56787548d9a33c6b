"""The WeChat Official Account channel: client, publisher, statistics, fake server.

Importing this package registers the WeChat tables on :data:`newsletter.models.Base`.
Public entry points: :func:`publish_send`, :func:`status`, :func:`sync_stats`,
:func:`issue_totals`, :class:`WeChatClient`, :class:`WeChatSettings`.
"""

from __future__ import annotations

from newsletter.core.wechat_settings import (
    WeChatSettings,
    get_wechat_settings,
    reset_wechat_settings,
)
from newsletter.models import wechat as models  # noqa: F401  (the channel's tables, as before)
from newsletter.wechat.client import WeChatClient
from newsletter.wechat.errors import WeChatError

__all__ = [
    "WeChatClient",
    "WeChatError",
    "WeChatSettings",
    "get_wechat_settings",
    "issue_totals",
    "publish_send",
    "reset_wechat_settings",
    "status",
    "sync_stats",
]


def __getattr__(name: str) -> object:
    # Lazy: the publisher pulls in the renderer; keep `import newsletter.wechat` light.
    if name in ("publish_send", "status", "publish_issue", "preview_issue"):
        from newsletter.wechat import publisher

        return getattr(publisher, name)
    if name in ("sync_stats", "issue_totals"):
        from newsletter.wechat import stats

        return getattr(stats, name)
    raise AttributeError(name)
