"""WeChat Official Account settings (env prefix ``NEWSLETTER_WECHAT_``).

Guarantees: the AppSecret is a :class:`~pydantic.SecretStr`; its ``repr``/``str``
are masked and nothing in this package logs it.  It comes from the environment
or from code (tests, the demo), never from the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["WeChatSettings", "get_wechat_settings", "reset_wechat_settings"]


class WeChatSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSLETTER_WECHAT_", extra="ignore")

    #: The account's AppID (公众号 开发者ID). Empty: the WeChat channel is not configured.
    appid: str = ""
    #: The AppSecret. Never logged, never stored in the database.
    secret: SecretStr = SecretStr("")
    base_url: str = "https://api.weixin.qq.com"
    #: "publish" (发布, no push), "mass_send" (群发, pushed to followers) or "both".
    mode: Literal["publish", "mass_send", "both"] = "mass_send"
    #: Token configured on the account's server settings, used to verify callbacks.
    token: SecretStr = SecretStr("")
    #: "stable" (POST /cgi-bin/stable_token, recommended) or "plain" (GET /cgi-bin/token).
    token_endpoint: Literal["stable", "plain"] = "stable"
    #: Refresh the shared token this many seconds before it expires.
    refresh_margin: int = 300
    #: Which text variant goes to WeChat.
    variant: Literal["zh-Hans", "zh-Hant"] = "zh-Hans"
    timeout: float = 15.0
    #: Attempts for a call that meets -1 (busy) or a network error, and the first back-off.
    max_attempts: int = 5
    backoff: float = 0.5
    #: Seconds to wait after 45066 (mass send retried too fast).
    too_fast_wait: float = 61.0
    #: freepublish/get polling.
    poll_interval: float = 3.0
    poll_timeout: float = 900.0
    #: Let external images be fetched from private addresses (local tests only;
    #: otherwise a URL in an issue could read the internal network).
    fetch_private_images: bool = False
    #: The cover of an issue without images (PNG or JPEG); empty: the packaged plain cover.
    default_cover: Path | None = None
    need_open_comment: int = 0
    only_fans_can_comment: int = 0

    @property
    def configured(self) -> bool:
        return bool(self.appid and self.secret.get_secret_value())


_override: WeChatSettings | None = None


def get_wechat_settings() -> WeChatSettings:
    """The process-wide WeChat settings (read from the environment once)."""
    global _override
    if _override is None:
        _override = WeChatSettings()
    return _override


def reset_wechat_settings(settings: WeChatSettings | None = None) -> None:
    """Replace the process-wide WeChat settings (tests, the demo)."""
    global _override
    _override = settings
