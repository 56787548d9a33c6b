"""WeChat errors: one class per kind of remedy, one catalogue message per errcode.

Each errcode has one message in Chinese and English (:data:`_MESSAGES`), Chinese first,
in one line; the command line prints it once (the library records or raises it and
does not log it as a warning besides).

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
    "catalogue",
    "error_for",
]


class WeChatError(NewsletterError):
    """Any failure talking to WeChat.

    ``str(exc)`` is one line, Chinese first: ``微信 {api}：{zh} / WeChat {api}: {en}
    [errcode N: errmsg]``. ``zh`` and ``en`` are the catalogue's two texts (or the
    caller's); a message given in one piece (``message`` only) is used as it is.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        errcode: int | None = None,
        errmsg: str = "",
        api: str = "",
        zh: str = "",
    ) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        self.zh, self.en = zh, message
        code = f" [errcode {errcode}: {errmsg}]" if errcode is not None else ""
        where = f"WeChat {api}" if api else "WeChat"
        if zh:
            zh_where = f"微信 {api}" if api else "微信"
            text = f"{zh_where}：{zh} / {where}: {message}{code}"
        else:
            text = f"{where}: {message}{code}"
        super().__init__(" ".join(text.split()))


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


#: errcode → (class, 中文, English): the one catalogue message of each errcode.
_MESSAGES: dict[int, tuple[type[WeChatError], str, str]] = {
    -1: (
        WeChatBusyError,
        "微信系统繁忙，已按退避重试仍未成功，请稍后重新运行",
        "WeChat is busy; retried with back-off and gave up. Try again later.",
    ),
    40001: (
        WeChatAuthError,
        "访问令牌刷新后仍被拒绝：可能有其他系统在强制刷新本账号的令牌，或 AppSecret 已被重置；"
        "请检查 NEWSLETTER_WECHAT_APPID / NEWSLETTER_WECHAT_SECRET（公众平台 → 设置与开发 → 基本配置）",
        "the access token was rejected even after a refresh: another system may be "
        "force-refreshing this account's token, or the AppSecret was reset. Check "
        "NEWSLETTER_WECHAT_APPID / NEWSLETTER_WECHAT_SECRET (公众平台 → 设置与开发 → 基本配置).",
    ),
    40013: (
        WeChatAuthError,
        "AppID 无效，请检查 NEWSLETTER_WECHAT_APPID",
        "the AppID is invalid. Check NEWSLETTER_WECHAT_APPID.",
    ),
    40125: (
        WeChatAuthError,
        "AppSecret 无效，请检查 NEWSLETTER_WECHAT_SECRET",
        "the AppSecret is invalid. Check NEWSLETTER_WECHAT_SECRET.",
    ),
    40014: (
        WeChatAuthError,
        "访问令牌刷新后仍无效：可能有其他系统用 /cgi-bin/token 为本账号获取令牌",
        "the access token is invalid even after a refresh; another system may be "
        "refreshing tokens for this account with the plain /cgi-bin/token endpoint.",
    ),
    42001: (
        WeChatAuthError,
        "访问令牌刚刷新又过期：请检查服务器时钟，以及是否有其他系统共用本账号",
        "the access token expired again right after a refresh; check the clock and "
        "whether another system shares this account.",
    ),
    41001: (
        WeChatAuthError,
        "请求缺少 access_token（newsletter.wechat 的缺陷）",
        "the access_token parameter was missing (a bug in newsletter.wechat).",
    ),
    40164: (
        WeChatAccountError,
        "本服务器的 IP 不在公众号的 IP 白名单中：请在 公众平台 → 设置与开发 → 基本配置 → IP白名单 "
        "添加，然后运行 newsletter wechat check",
        "this server's IP address is not on the account's IP allow-list. Add it under "
        "公众平台 → 设置与开发 → 基本配置 → IP白名单, then run `newsletter wechat check`.",
    ),
    48001: (
        WeChatAccountError,
        "本账号无此接口权限（未认证或缺少权限），请认证账号或联系管理员",
        "this API is not authorised for the account (unverified account or missing "
        "permission). Verify the account or ask its administrator.",
    ),
    45009: (
        WeChatQuotaError,
        "本账号今日接口调用次数已用完，明天重新运行 newsletter wechat publish 即可继续",
        "the account's daily API quota is used up. The WeChat channel resumes tomorrow: "
        "re-run `newsletter wechat publish`.",
    ),
    45011: (
        WeChatQuotaError,
        "接口调用过于频繁，请放慢后重新运行",
        "API called too often; slow down and re-run.",
    ),
    45028: (
        WeChatQuotaError,
        "群发次数已用完（订阅号每天一次，服务号每位粉丝每月四次）；邮件不受影响，额度恢复后重新运行微信渠道",
        "no mass-send (群发) quota left: a subscription account may mass-send once a day, "
        "a service account reaches each follower 4 times a month. The email channel is "
        "unaffected; re-run the WeChat channel when the quota resets.",
    ),
    45002: (
        WeChatContentError,
        "文章内容过长（含标签 ≥ 20,000 字符或 ≥ 1 MB），渲染器本应拆分，请报告此缺陷",
        "article content too long (≥ 20,000 characters with markup or ≥ 1 MB). The "
        "renderer should have split it: please report this bug.",
    ),
    45003: (
        WeChatContentError,
        "文章标题过长（> 64 字符），渲染器缺陷",
        "article title too long (> 64 characters): renderer bug.",
    ),
    45004: (
        WeChatContentError,
        "文章摘要过长（> 120 字符），渲染器缺陷",
        "article digest too long (> 120 characters): renderer bug.",
    ),
    45065: (
        WeChatError,
        "使用此 clientmsgid 的群发已存在",
        "a mass send with this clientmsgid already exists.",
    ),
    45066: (
        WeChatQuotaError,
        "群发重试过快，请等待一分钟",
        "mass send retried too fast; wait a minute.",
    ),
    45067: (
        WeChatContentError,
        "clientmsgid 超过 64 个字符（我们的缺陷）",
        "clientmsgid longer than 64 characters: a bug of ours.",
    ),
    40007: (
        WeChatMediaError,
        "media_id 无效：素材已不在账号中，会自动重新上传一次",
        "invalid media_id: the asset is gone from the account; it is re-uploaded once "
        "automatically.",
    ),
    40005: (
        WeChatMediaError,
        "文件类型不支持（请用 jpg 或 png）",
        "unsupported file type (use jpg or png).",
    ),
    40009: (
        WeChatMediaError,
        "图片过大（uploadimg 限 1 MB）",
        "image too large (uploadimg takes ≤ 1 MB).",
    ),
    61500: (
        WeChatError,
        "统计接口日期格式错误（我们的缺陷）",
        "bad date format in a statistics request (a bug of ours).",
    ),
    61501: (
        WeChatError,
        "统计接口日期范围超出允许（我们的缺陷）",
        "date range outside what the statistics API allows (a bug of ours).",
    ),
}

_UNKNOWN = (
    WeChatError,
    "微信返回了未列出的错误码，请查阅微信全局返回码说明",
    "unexpected error code; see WeChat's global return code list.",
)


def catalogue(errcode: int) -> tuple[str, str]:
    """(中文, English): the catalogue message of ``errcode``."""
    _cls, zh, en = _MESSAGES.get(errcode, _UNKNOWN)
    return zh, en


def error_for(
    errcode: int, errmsg: str, api: str, *, detail: tuple[str, str] | None = None
) -> WeChatError:
    """The exception for ``errcode`` with its catalogue message; ``detail`` (中文, English)
    names what it was about (a file and the article it belongs to)."""
    cls, zh, en = _MESSAGES.get(errcode, _UNKNOWN)
    if detail:
        zh, en = f"{detail[0]}：{zh}", f"{detail[1]}: {en}"
    return cls(en, errcode=errcode, errmsg=errmsg, api=api, zh=zh)
