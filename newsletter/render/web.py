"""The web-archive page of one issue.

Guarantees: a complete standalone HTML5 document (``lang`` zh-CN or zh-TW,
viewport meta, one inline ``<style>``, no script, no external stylesheet,
font or CDN), the full content with a table of contents, ``id`` anchors per
section and item identical to the email's (``s1``, ``s1-i2``), original link
targets (never tracked), and a link to the other script variant
(``?v=zh-Hant`` / plain URL).
"""

from __future__ import annotations

import html as _html

from markupsafe import Markup

from newsletter.content.model import Image, Issue
from newsletter.render.common import image_url, preheader, subject, toc
from newsletter.render.context import HANT, RenderContext
from newsletter.render.labels import html_lang, issue_no, labels
from newsletter.render.templating import render_template
from newsletter.render.views import Hooks, build_sections, intro_html

__all__ = ["render_web"]

_FONTS = (
    '"PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC",'
    '"WenQuanYi Micro Hei",sans-serif'
)
_FONTS_HANT = (
    '"PingFang TC","Microsoft JhengHei","Noto Sans CJK TC","PingFang SC",'
    '"Hiragino Sans GB","Microsoft YaHei","WenQuanYi Micro Hei",sans-serif'
)


def _hooks(ctx: RenderContext) -> Hooks:
    def anchor(href: str, inner: str, hint: int | None) -> str:
        return f'<a href="{_html.escape(href)}" rel="noopener">{inner}</a>'

    def meta_url(url: str, hint: int | None) -> str:
        u = _html.escape(url)
        return f'<a href="{u}" rel="noopener">{u}</a>'

    def image(im: Image) -> str:
        return image_url(ctx.base_url, im)

    return Hooks(anchor=anchor, image=image, meta_url=meta_url)


def render_web(issue: Issue, ctx: RenderContext) -> str:
    """The complete page; see the module docstring."""
    ctx = ctx.in_variant(issue.variant)
    L = labels(issue.variant)
    other = "zh-Hans" if issue.variant == HANT else HANT
    hooks = _hooks(ctx)
    return render_template(
        "web/page.html",
        lang=html_lang(issue.variant),
        L=L,
        fonts=Markup(_FONTS_HANT if issue.variant == HANT else _FONTS),
        subject=subject(issue),
        description=preheader(issue, 150),
        canonical=ctx.archive_url(issue),
        other_url=ctx.archive_url(issue, other),
        other_lang=html_lang(other),
        issue=issue,
        issue_no=issue_no(issue.number, issue.variant),
        toc=toc(issue),
        intro=intro_html(issue, hooks),
        sections=build_sections(issue, hooks),
        publication=ctx.publication_name,
        sender=ctx.sender_name,
        postal_address=ctx.postal_address,
    )
