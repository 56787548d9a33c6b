"""The email message: the HTML part (:mod:`.email`) and the text part (:mod:`.text`).

The two renderers never import each other; this module puts their outputs
together into one :class:`EmailRendition` and makes the full-or-digest
decision that both parts follow.  Guarantees: see :mod:`.email`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from newsletter.content.model import Issue
from newsletter.render.common import preheader, subject
from newsletter.render.context import RenderContext
from newsletter.render.email import Mode, render_email_html, worst_case_bytes
from newsletter.render.errors import EmailBudgetError
from newsletter.render.text import render_text

__all__ = ["EmailRendition", "render_email"]


@dataclass
class EmailRendition:
    """One issue's email, ready for per-recipient slot substitution.

    ``link_ids`` lists the :attr:`Link.position` of every issue link present
    in the HTML part, in order of first appearance (tracked through
    ``/c/%%TOKEN%%/{position}`` when click tracking is on).
    """

    html: str
    text: str
    subject: str
    preheader: str
    mode: Mode
    reason: str
    html_bytes_worst: int
    link_ids: list[int] = field(default_factory=list)


def render_email(issue: Issue, ctx: RenderContext) -> EmailRendition:
    """Render the email, choosing full or digest by the byte budget (see module doc)."""
    ctx = ctx.in_variant(issue.variant)
    budget = ctx.email_budget_bytes
    html, links = render_email_html(issue, ctx, "full")
    full_worst = worst_case_bytes(html)
    mode: Mode = "full"
    if full_worst <= budget:
        reason = (
            f"完整版：HTML 最多 {full_worst:,} 字节，在 {budget:,} 字节的上限内 / "
            f"full: worst-case HTML {full_worst:,} bytes is within the {budget:,}-byte budget"
        )
        worst = full_worst
    else:
        html, links = render_email_html(issue, ctx, "digest")
        worst = worst_case_bytes(html)
        if worst > budget:
            raise EmailBudgetError(
                f"issue {issue.number} ({issue.variant}): even the digest email is "
                f"{worst:,} bytes worst-case, over the {budget:,}-byte budget "
                f"(full would be {full_worst:,}); shorten titles/summaries or raise "
                "email_budget_bytes"
            )
        mode = "digest"
        reason = (
            f"摘要版：完整版 HTML 最多 {full_worst:,} 字节，超过 {budget:,} 字节的上限；"
            f"摘要版 {worst:,} 字节 / "
            f"digest: full HTML would be {full_worst:,} bytes worst-case, over the "
            f"{budget:,}-byte budget; digest is {worst:,} bytes"
        )
    return EmailRendition(
        html=html,
        text=render_text(issue, ctx, mode),
        subject=subject(issue),
        preheader=preheader(issue),
        mode=mode,
        reason=reason,
        html_bytes_worst=worst,
        link_ids=links,
    )
