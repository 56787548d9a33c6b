"""WeChat errors: one class per kind of remedy, one clear message per errcode.

Every :class:`WeChatError` carries ``errcode``, ``errmsg`` (WeChat's own text),
``api`` (the path called) and ``retryable`` (True when the same call may succeed
later without anyone changing anything).  Messages never contain the AppSecret
or an access token.
"""

from __future__ import annotations

from newsletter.core.errors import NewsletterError

__all__ = [
    "WeChatAccountError",
    "WeChatAuthError",
    "WeChatBusyError",
    "WeChatContentError",
    "WeChatError",
    "WeChatMediaError",
    "WeChatPublishFailed",
    "WeChatQuotaError",
    "error_for",
]


class WeChatError(NewsletterError):
    """Any failure talking to WeChat."""

    retryable = False

    def __init__(
        self, message: str, *, errcode: int | None = None, errmsg: str = "", api: str = ""
    ) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        where = f"WeChat {api}" if api else "WeChat"
        code = f" [errcode {errcode}: {errmsg}]" if errcode is not None else ""
        super().__init__(f"{where}: {message}{code}")


class WeChatAuthError(WeChatError):
    """Credentials or token rejected (wrong AppID/AppSecret, token still invalid after refresh)."""


class WeChatAccountError(WeChatError):
    """An operator must change the account's settings (IP allow-list, API permissions)."""


class WeChatQuotaError(WeChatError):
    """A quota is used up; the same call works again after the quota resets."""

    retryable = True


class WeChatBusyError(WeChatError):
    """WeChat stayed busy (-1) or unreachable through every retry."""

    retryable = True


class WeChatContentError(WeChatError):
    """The article broke a limit (45002/45003/45004): a bug of ours, the renderer should prevent it."""


class WeChatMediaError(WeChatError):
    """A media_id or an upload was refused (40007, wrong type or size)."""


class WeChatPublishFailed(WeChatError):
    """freepublish ended with status 2, 3, 4, 5 or 6; ``fail_idx`` are 1-based article indexes."""

    def __init__(self, message: str, *, status: int, fail_idx: list[int]) -> None:
        self.status = status
        self.fail_idx = fail_idx
        super().__init__(message, api="/cgi-bin/freepublish/get")


_MESSAGES: dict[int, tuple[type[WeChatError], str]] = {
    -1: (WeChatBusyError, "WeChat is busy; retried with back-off and gave up. Try again later."),
    40001: (
        WeChatAuthError,
        "the AppSecret is wrong or the access token is invalid even after a "
        "refresh. Check NEWSLETTER_WECHAT_APPID / NEWSLETTER_WECHAT_SECRET (公众平台 → 设置与开发 "
        "→ 基本配置), and that no other system resets the AppSecret.",
    ),
    40013: (WeChatAuthError, "the AppID is invalid. Check NEWSLETTER_WECHAT_APPID."),
    40125: (WeChatAuthError, "the AppSecret is invalid. Check NEWSLETTER_WECHAT_SECRET."),
    40014: (
        WeChatAuthError,
        "the access token is invalid even after a refresh; another system may "
        "be refreshing tokens for this account with the plain /cgi-bin/token endpoint.",
    ),
    42001: (
        WeChatAuthError,
        "the access token expired again right after a refresh; check the "
        "clock and whether another system shares this account.",
    ),
    41001: (
        WeChatAuthError,
        "the access_token parameter was missing (a bug in newsletter.wechat).",
    ),
    40164: (
        WeChatAccountError,
        "this server's IP address is not on the account's IP allow-list. "
        "Add it under 公众平台 → 设置与开发 → 基本配置 → IP白名单, then run `newsletter wechat check`.",
    ),
    48001: (
        WeChatAccountError,
        "this API is not authorised for the account (unverified account "
        "or missing permission). Verify the account or ask its administrator.",
    ),
    45009: (
        WeChatQuotaError,
        "the account's daily API quota is used up. The WeChat channel "
        "resumes tomorrow: re-run `newsletter wechat publish`.",
    ),
    45011: (WeChatQuotaError, "API called too often; slow down and re-run."),
    45028: (
        WeChatQuotaError,
        "no mass-send (群发) quota left: a subscription account may mass-send "
        "once a day, a service account reaches each follower 4 times a month. The email "
        "channel is unaffected; re-run the WeChat channel when the quota resets.",
    ),
    45002: (
        WeChatContentError,
        "article content too long (≥ 20,000 characters with markup or ≥ 1 "
        "MB). The renderer should have split it: please report this bug.",
    ),
    45003: (WeChatContentError, "article title too long (> 64 characters): renderer bug."),
    45004: (WeChatContentError, "article digest too long (> 120 characters): renderer bug."),
    45065: (WeChatError, "a mass send with this clientmsgid already exists."),
    45066: (WeChatQuotaError, "mass send retried too fast; wait a minute."),
    45067: (WeChatContentError, "clientmsgid longer than 64 characters: a bug of ours."),
    40007: (
        WeChatMediaError,
        "invalid media_id: the asset is gone from the account; it is "
        "re-uploaded once automatically.",
    ),
    40005: (WeChatMediaError, "unsupported file type (use jpg or png)."),
    40009: (WeChatMediaError, "image too large (uploadimg takes ≤ 1 MB)."),
    61500: (WeChatError, "bad date format in a statistics request (a bug of ours)."),
    61501: (WeChatError, "date range outside what the statistics API allows (a bug of ours)."),
}


def error_for(errcode: int, errmsg: str, api: str) -> WeChatError:
    """The exception for ``errcode`` with an actionable message."""
    cls, text = _MESSAGES.get(
        errcode, (WeChatError, "unexpected error code; see WeChat's global return code list.")
    )
    return cls(text, errcode=errcode, errmsg=errmsg, api=api)
