"""The email's HTML part (full or digest); :mod:`.message` adds the text part.

Guarantees:

* Rendering and CSS inlining run once per (issue, variant); per-recipient
  values appear only as slots (see :mod:`.context`).
* ``html_bytes_worst`` is the UTF-8 size of the HTML part with every slot
  filled at its maximum length.  The full email is used when that size is
  within ``ctx.email_budget_bytes``; otherwise the digest is used, and
  :class:`~.errors.EmailBudgetError` is raised if even the digest does not fit.
  ``reason`` records the decision with the byte figures.
* The open pixel comes right after the hidden preheader, so Gmail's clipping
  can never remove it; every table-of-contents link targets an element id
  present in the same HTML; no line of the HTML or text exceeds 998 octets.
"""

from __future__ import annotations

import html as _html
from typing import Any, Literal

from markupsafe import Markup

from newsletter.content.model import Image, Issue
from newsletter.render.common import (
    BlockStyle,
    LinkIndex,
    image_url,
    item_anchor,
    item_summary,
    preheader,
    subject,
    toc,
)
from newsletter.render.context import SLOTS, RenderContext, slot_extra_bytes
from newsletter.render.inline import inline_css
from newsletter.render.labels import html_lang, issue_no, labels
from newsletter.render.lines import fold_html
from newsletter.render.templating import render_template
from newsletter.render.views import Hooks, build_sections, intro_html

__all__ = ["Mode", "render_email_html", "worst_case_bytes"]

Mode = Literal["full", "digest"]

_FONTS_HANS = '"PingFang SC","Hiragino Sans GB","Microsoft YaHei",sans-serif'
_FONTS_HANT = (
    '"PingFang TC","PingFang SC","Microsoft JhengHei","Hiragino Sans GB","Microsoft YaHei",'
    "sans-serif"
)
#: Invisible filler after the preheader so clients do not append body text to it.
_FILLER = Markup("&#847;&zwnj;&nbsp;" * 24)


#: Content tables get their borders from attributes, not from a style on every cell.
_EMAIL_BLOCKS = BlockStyle(
    extra={"table": 'border="1" cellpadding="5" cellspacing="0" bordercolor="#d9dde3"'}
)


def worst_case_bytes(s: str) -> int:
    """UTF-8 size of ``s`` once every slot is filled at its maximum length."""
    return len(s.encode()) + slot_extra_bytes(s)


def _common(issue: Issue, ctx: RenderContext) -> dict[str, Any]:
    return {
        "lang": html_lang(issue.variant),
        "L": labels(issue.variant),
        "fonts": Markup(_FONTS_HANT if issue.variant == "zh-Hant" else _FONTS_HANS),
        "subject": subject(issue),
        "preheader": preheader(issue),
        "filler": _FILLER,
        "pixel": ctx.open_pixel_url if ctx.track_opens else "",
        "issue": issue,
        "issue_no": issue_no(issue.number, issue.variant),
        "name_slot": SLOTS["NAME"],
        "archive": ctx.archive_url(issue),
        "toc": toc(issue),
        "publication": ctx.publication_name,
        "sender": ctx.sender_name,
        "postal_address": ctx.postal_address,
        "unsubscribe": ctx.unsubscribe_url,
        "preferences": ctx.preferences_url,
    }


def _hooks(issue: Issue, ctx: RenderContext, index: LinkIndex) -> Hooks:
    L = labels(issue.variant)

    def target(url: str, hint: int | None) -> str:
        if url.startswith("#"):
            return url
        pos = index.position(url, hint)
        return ctx.click_url(pos) if (pos is not None and ctx.track_clicks) else url

    def anchor(href: str, inner: str, hint: int | None) -> str:
        return f'<a href="{_html.escape(target(href, hint))}">{inner}</a>'

    def meta_url(url: str, hint: int | None) -> str:
        t = target(url, hint)
        shown = L["original"] if t != url else _html.escape(url)
        return f'<a href="{_html.escape(t)}">{shown}</a>'

    def image(im: Image) -> str:
        return image_url(ctx.base_url, im)

    return Hooks(anchor=anchor, image=image, meta_url=meta_url, style=_EMAIL_BLOCKS)


def render_email_html(issue: Issue, ctx: RenderContext, mode: Mode) -> tuple[str, list[int]]:
    """Final HTML part for ``mode`` (inlined, folded) and the link positions it uses."""
    ctx = ctx.in_variant(issue.variant)
    data = _common(issue, ctx)
    index = LinkIndex(issue.links)
    if mode == "full":
        hooks = _hooks(issue, ctx, index)
        data["intro"] = intro_html(issue, hooks)
        data["sections"] = build_sections(issue, hooks)
        raw = render_template("email/full.html", **data)
    else:
        archive = ctx.archive_url(issue)
        data["sections"] = [
            {
                "anchor": entry.anchor,
                "label": entry.label,
                "entries": [
                    {
                        "anchor": item_anchor(s, it),
                        "number": it.number,
                        "title": it.title,
                        "summary": item_summary(it),
                        "web": f"{archive}#{item_anchor(s, it)}",
                    }
                    for it in s.items
                ],
            }
            for s, entry in zip(issue.sections, data["toc"], strict=True)
        ]
        raw = render_template("email/digest.html", **data)
    return fold_html(inline_css(raw)), list(index.used)
