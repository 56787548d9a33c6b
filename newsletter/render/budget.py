"""Size budgets of every channel, as lint findings for ``newsletter issue lint``.

:func:`size_checks` renders the issue once per channel and reports, for each,
its size against its budget: ``("error", code, message)`` when a channel
cannot be produced within its limits, ``("warning", …)`` when it degrades
(digest email) or is close to a limit, ``("info", …)`` otherwise.
"""

from __future__ import annotations

from typing import Literal

from newsletter.content.model import Issue
from newsletter.render.context import RenderContext
from newsletter.render.errors import RenderError
from newsletter.render.lines import LIMIT, max_line_octets
from newsletter.render.message import render_email
from newsletter.render.web import render_web
from newsletter.render.wechat import MAX_ARTICLES, render_wechat

__all__ = ["Finding", "size_checks"]

Level = Literal["error", "warning", "info"]
Finding = tuple[Level, str, str]
_CLOSE = 0.9  # warn from 90 % of a budget


def size_checks(issue: Issue, ctx: RenderContext) -> list[Finding]:
    """One or more findings per channel (email HTML, email text, WeChat, web)."""
    out: list[Finding] = []
    budget = ctx.email_budget_bytes
    try:
        em = render_email(issue, ctx)
    except RenderError as e:
        out.append(("error", "email-budget", str(e)))
    else:
        if em.mode == "digest":
            zh, _, en = em.reason.partition(" / ")
            out.append(
                (
                    "warning",
                    "email-digest",
                    f"邮件将以摘要形式发送 — {zh} / email will be sent as a digest — {en}",
                )
            )
        elif em.html_bytes_worst > _CLOSE * budget:
            zh, _, en = em.reason.partition(" / ")
            out.append(
                (
                    "warning",
                    "email-size",
                    f"邮件接近容量上限 — {zh} / email is close to its budget — {en}",
                )
            )
        else:
            out.append(("info", "email-size", em.reason))
        longest = max(max_line_octets(em.html), max_line_octets(em.text))
        level: Level = "error" if longest > LIMIT else "info"
        out.append(
            (
                level,
                "email-lines",
                f"邮件最长一行 {longest} 字节（上限 {LIMIT}） / "
                f"longest email line {longest} octets (limit {LIMIT})",
            )
        )
        out.append(
            (
                "info",
                "email-text",
                f"纯文本部分 {len(em.text.encode()):,} 字节，{len(em.text):,} 个字符 / "
                f"text part {len(em.text.encode()):,} bytes, {len(em.text):,} characters",
            )
        )
    limit = ctx.wechat_max_chars
    try:
        arts = render_wechat(issue, ctx)
    except RenderError as e:
        out.append(("error", "wechat-limit", str(e)))
    else:
        sizes = ", ".join(f"{i}: {a.char_count:,}" for i, a in enumerate(arts, 1))
        level = "warning" if len(arts) == MAX_ARTICLES else "info"
        out.append(
            (
                level,
                "wechat-articles",
                f"公众号草稿：{len(arts)} 篇（最多 {MAX_ARTICLES} 篇；含标记的字符数，"
                f"上限 < {limit:,}：{sizes}） / "
                f"WeChat draft: {len(arts)} of at most {MAX_ARTICLES} articles "
                f"(characters with markup, limit < {limit:,}: {sizes})",
            )
        )
        for i, a in enumerate(arts, 1):
            if a.char_count > _CLOSE * limit:
                out.append(
                    (
                        "warning",
                        "wechat-size",
                        f"公众号第 {i} 篇《{a.title}》有 {a.char_count:,} 个字符，"
                        f"接近 {limit:,} 的上限 / "
                        f"WeChat article {i} 《{a.title}》 is {a.char_count:,} characters, "
                        f"close to the {limit:,} limit",
                    )
                )
        remote = [im.src for im in issue.images if not im.sha256]
        if remote:  # wechat/assets.py fetches and uploads them; wechat/lint.py checks them
            out.append(
                (
                    "info",
                    "wechat-images",
                    "发布时会下载外部图片并上传到公众号："
                    + ", ".join(remote)
                    + " / external images are fetched and uploaded to WeChat when publishing: "
                    + ", ".join(remote),
                )
            )
    web = render_web(issue, ctx)
    out.append(
        (
            "info",
            "web-size",
            f"网页 {len(web.encode()):,} 字节，{len(web):,} 个字符 / "
            f"web page {len(web.encode()):,} bytes, {len(web):,} characters",
        )
    )
    return out
