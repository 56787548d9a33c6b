"""The WeChat part of ``newsletter demo``: publish an issue to the fake server.

:func:`demo_publish` starts the fake WeChat API on a free local port, points a
temporary :class:`WeChatSettings` at it, publishes and mass-sends the issue,
lets three fake days pass, syncs the statistics and returns a summary.  It never
touches a real account, whatever ``NEWSLETTER_WECHAT_*`` says.
"""

from __future__ import annotations

from typing import Any

from newsletter.core.wechat_settings import (
    WeChatSettings,
    get_wechat_settings,
    reset_wechat_settings,
)
from newsletter.devtools.wechat_fake import FakeWeChat, run_fake
from newsletter.wechat.publisher import publish_send, wechat_send_for
from newsletter.wechat.stats import issue_totals, sync_stats

__all__ = ["demo_publish"]


def demo_publish(issue_id: int) -> dict[str, Any]:
    """Publish ``issue_id`` to a fake account; {status, stats, requests, violations}."""
    previous = get_wechat_settings()
    fake = FakeWeChat()
    with run_fake(fake) as (f, url):
        wx = WeChatSettings(
            appid=f.appid,
            secret=f.secret,
            base_url=url,  # type: ignore[arg-type]
            mode="both",
            poll_interval=0.05,
            backoff=0.05,
        )
        reset_wechat_settings(wx)
        try:
            send_id = wechat_send_for(issue_id, settings=wx)
            out = publish_send(send_id, settings=wx)
            f.advance(days=3)
            synced = sync_stats(today=f.today(), settings=wx)
        finally:
            reset_wechat_settings(previous)
    return {
        "status": out,
        "stats_sync": synced,
        "totals": issue_totals(issue_id),
        "requests": len(f.requests),
        "violations": len(f.violations()),
    }
