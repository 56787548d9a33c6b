"""Fixed interface wording per edition variant (简体 / 繁體)."""

from __future__ import annotations

from typing import Final

__all__ = ["html_lang", "issue_no", "labels"]

_HANS: Final[dict[str, str]] = {
    "issue_no": "第{n}期",
    "toc": "本期目录",
    "greeting": "{name}您好：",  # reads well with an empty name too
    "source": "来源",
    "author": "作者",
    "read_full": "阅读全文",
    "read_web": "在浏览器中阅读",
    "digest_notice": (
        "本期内容较长，邮件为摘要版。点击各条目的“阅读全文”或下面的链接，在网页中阅读完整内容。"
    ),
    "digest_link": "阅读完整版",
    "original": "查看原文",
    "unsubscribe": "退订",
    "preferences": "订阅设置",
    "archive": "网页版",
    "why": "您收到这封邮件，是因为订阅了{pub}。",
    "references": "参考链接",
    "see_note": "见文末[{n}]",
    "analysis": "政策简析",
    "switch": "繁體",
    "part": "（{i}/{n}）",
    "links": "链接",
    "contents_follow": "各栏目内容见本次推送的后续文章。",
    "email_version": "订阅邮件版（复制到浏览器打开）：",
    "subscribe_qr": "长按识别二维码，订阅邮件版",
    "continued": "（续）",
}

_HANT: Final[dict[str, str]] = {
    "issue_no": "第{n}期",
    "toc": "本期目錄",
    "greeting": "{name}您好：",  # reads well with an empty name too
    "source": "來源",
    "author": "作者",
    "read_full": "閱讀全文",
    "read_web": "在瀏覽器中閱讀",
    "digest_notice": (
        "本期內容較長，郵件為摘要版。點擊各條目的「閱讀全文」或下面的連結，在網頁中閱讀完整內容。"
    ),
    "digest_link": "閱讀完整版",
    "original": "查看原文",
    "unsubscribe": "退訂",
    "preferences": "訂閱設定",
    "archive": "網頁版",
    "why": "您收到這封郵件，是因為訂閱了{pub}。",
    "references": "參考連結",
    "see_note": "見文末[{n}]",
    "analysis": "政策簡析",
    "switch": "简体",
    "part": "（{i}/{n}）",
    "links": "連結",
    "contents_follow": "各欄目內容見本次推送的後續文章。",
    "email_version": "訂閱郵件版（複製到瀏覽器打開）：",
    "subscribe_qr": "長按識別二維碼，訂閱郵件版",
    "continued": "（續）",
}


def labels(variant: str) -> dict[str, str]:
    """Interface strings for ``variant`` (anything but ``zh-Hant`` gets 简体)."""
    return _HANT if variant == "zh-Hant" else _HANS


def html_lang(variant: str) -> str:
    """The ``lang`` attribute for ``variant``: ``zh-TW`` or ``zh-CN``."""
    return "zh-TW" if variant == "zh-Hant" else "zh-CN"


def issue_no(number: int, variant: str) -> str:
    """``第N期`` for ``variant``; empty when the issue has no number yet (never 第0期)."""
    return labels(variant)["issue_no"].format(n=number) if number > 0 else ""
