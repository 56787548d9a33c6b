"""WeChat Official Account articles (one draft of at most 8 articles).

Guarantees, for every returned article:

* ``content`` uses inline styles only — no ``<style>``, ``<script>``,
  ``class=`` or ``id=`` — and ``len(content) < ctx.wechat_max_chars`` (the
  count includes every tag and attribute) and it is under 1 MB;
* external links are not clickable in WeChat, so each becomes a numbered
  reference ``[n]`` listed with its URL (as text) at the end of the article;
* images use ``src="wxasset:{sha256}"`` (original src when no hash is known) so
  the publisher can swap in WeChat-hosted URLs; ``image_hashes`` lists them;
* ``title`` ≤ 64, ``digest`` ≤ 120 and ``author`` ≤ 8 characters.

Split: a headline article (title, intro, full table of contents), then one article per
section, packed into at most 8 articles by :mod:`.packing`; the articles' HTML is made by
:mod:`.markup`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markupsafe import Markup

from newsletter.content.model import Issue
from newsletter.render.common import (
    blocks_html,
    item_summary,
    preheader,
    section_anchor,
    section_label,
    toc,
    truncate,
)
from newsletter.render.context import RenderContext
from newsletter.render.errors import WeChatLimitError
from newsletter.render.labels import issue_no, labels
from newsletter.render.templating import render_template
from newsletter.render.wechat.markup import (
    BLOCK_CSS,
    SUBSCRIBE,
    Chunk,
    Collector,
    S,
    assemble,
    renumber,
    sanitize,
    style_cells,
)
from newsletter.render.wechat.packing import merge, split_section

__all__ = [
    "MAX_ARTICLES",
    "MAX_AUTHOR",
    "MAX_DIGEST",
    "MAX_TITLE",
    "WeChatArticle",
    "render_wechat",
]

MAX_ARTICLES = 8
MAX_TITLE = 64
MAX_DIGEST = 120
MAX_AUTHOR = 8
MAX_CONTENT_BYTES = 1_000_000


@dataclass
class WeChatArticle:
    """One article of the WeChat draft (fields as the draft/add API names them)."""

    title: str
    author: str
    digest: str
    content: str
    content_source_url: str
    image_hashes: list[str] = field(default_factory=list)
    char_count: int = 0
    #: Images made by the renderer itself (sha256 → PNG bytes), uploaded like the
    #: issue's own: the subscribe QR code.
    inline_images: dict[str, bytes] = field(default_factory=dict)


def _short_author(author: str) -> str:
    author = author.strip()
    if len(author) <= MAX_AUTHOR:
        return author
    names = [n for n in re.split(r"[、,，/;；\s]+", author) if n]
    kept = ""
    for n in names:
        cand = f"{kept}、{n}" if kept else n
        if len(cand) + 1 > MAX_AUTHOR:
            break
        kept = cand
    return f"{kept}等" if kept else author[:MAX_AUTHOR]


def _headline(issue: Issue, ctx: RenderContext) -> WeChatArticle:
    L = labels(issue.variant)
    c = Collector(issue.variant)
    h = c.hooks()
    intro = c.fragment(
        style_cells(
            blocks_html(issue.intro, issue, anchor=h.anchor, image=h.image, style=BLOCK_CSS)
        )
    )
    htmls, urls, images = renumber([intro])
    inline: dict[str, bytes] = {}
    if ctx.wechat_qr:
        from newsletter.render.qr import qr_png, qr_sha256

        png = qr_png(ctx.subscribe_url("wechat-qr"))
        inline[qr_sha256(png)] = png
        images = [*images, qr_sha256(png)]
    content = sanitize(
        render_template(
            "wechat/headline.html",
            issue=issue,
            S=S,
            L=L,
            intro=Markup(htmls[0]),
            notes=urls,
            toc=toc(issue),
            issue_no=issue_no(issue.number, issue.variant),
            subscribe_url=ctx.subscribe_url(),
            qr=next(iter(inline), None),
        )
    )
    title = issue.title
    no = issue_no(issue.number, issue.variant)
    if no and no not in title:
        title = f"{title}｜{no}"
    return WeChatArticle(
        title=truncate(title, MAX_TITLE),
        author=_short_author(issue.author),
        digest=truncate(preheader(issue), MAX_DIGEST),
        content=content,
        content_source_url=ctx.archive_url(issue),
        image_hashes=images,
        char_count=len(content),
        inline_images=inline,
    )


def _section_article(
    issue: Issue,
    ctx: RenderContext,
    chunks: list[Chunk],
    part: str,
    content: str,
    images: list[str],
) -> WeChatArticle:
    first = chunks[0]
    s = first.section
    no = issue_no(issue.number, issue.variant)
    title = (
        "；".join(dict.fromkeys(section_label(c.section) for c in chunks))
        + part
        + (f"｜{no}" if no else "")
    )
    summaries = [item_summary(it) for c in chunks for it, _ in c.items]
    digest = next(
        (x for x in summaries if x), "；".join(it.title for c in chunks for it, _ in c.items)
    )
    anchor = section_anchor(s)
    if first.continued and first.items:
        anchor = first.items[0][0].anchor or anchor
    return WeChatArticle(
        title=truncate(title, MAX_TITLE),
        author=_short_author(issue.author),
        digest=truncate(digest, MAX_DIGEST),
        content=content,
        content_source_url=f"{ctx.archive_url(issue)}#{anchor}",
        image_hashes=images,
        char_count=len(content),
    )


def render_wechat(issue: Issue, ctx: RenderContext) -> list[WeChatArticle]:
    """The draft's articles, headline first; see the module docstring."""
    ctx = ctx.in_variant(issue.variant)
    limit = ctx.wechat_max_chars
    # Every article ends with the email edition's address; the packer measures articles
    # with it, so no article passes the limit because of it.
    SUBSCRIBE.set(ctx.subscribe_url())
    head = _headline(issue, ctx)
    if head.char_count >= limit:
        raise WeChatLimitError(
            f"WeChat: the headline article (intro + table of contents) is {head.char_count:,} "
            f"characters; it must stay below {limit:,}. Shorten the issue intro."
        )
    groups: list[list[Chunk]] = []
    per_section: list[int] = []
    for s in issue.sections:
        parts = split_section(issue, s, limit)
        per_section.append(len(parts))
        groups += [[p] for p in parts]
    groups = merge(issue, groups, limit, MAX_ARTICLES - 1)
    if len(groups) + 1 > MAX_ARTICLES:
        detail = ", ".join(
            f"{s.numeral or s.number}: {n}"
            for s, n in zip(issue.sections, per_section, strict=True)
        )
        raise WeChatLimitError(
            f"WeChat: the issue needs {len(groups) + 1} articles (headline + sections "
            f"split as {detail}), but a draft holds at most {MAX_ARTICLES}. "
            "Shorten the issue or publish some sections separately."
        )
    spans: dict[int, list[int]] = {}  # section -> indices of the groups holding it
    for gi, g in enumerate(groups):
        for c in g:
            spans.setdefault(id(c.section), [])
            if gi not in spans[id(c.section)]:
                spans[id(c.section)].append(gi)
    articles = [head]
    L = labels(issue.variant)
    for gi, g in enumerate(groups):
        span = spans[id(g[0].section)]
        part = L["part"].format(i=span.index(gi) + 1, n=len(span)) if len(span) > 1 else ""
        content, images = assemble(issue, g)
        if len(content.encode()) >= MAX_CONTENT_BYTES:
            raise WeChatLimitError(f"WeChat: article is {len(content.encode()):,} bytes (≥ 1 MB)")
        articles.append(_section_article(issue, ctx, g, part, content, images))
    return articles
