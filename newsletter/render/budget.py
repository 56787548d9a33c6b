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
            out.append(("warning", "email-digest", f"email will be sent as a digest — {em.reason}"))
        elif em.html_bytes_worst > _CLOSE * budget:
            out.append(("warning", "email-size", f"email is close to its budget — {em.reason}"))
        else:
            out.append(("info", "email-size", em.reason))
        longest = max(max_line_octets(em.html), max_line_octets(em.text))
        level: Level = "error" if longest > LIMIT else "info"
        out.append((level, "email-lines", f"longest email line {longest} octets (limit {LIMIT})"))
        out.append(
            (
                "info",
                "email-text",
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
                    "external images are fetched and uploaded to WeChat when publishing: "
                    + ", ".join(remote),
                )
            )
    web = render_web(issue, ctx)
    out.append(
        ("info", "web-size", f"web page {len(web.encode()):,} bytes, {len(web):,} characters")
    )
    return out
