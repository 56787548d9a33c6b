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

Split: a headline article (title, intro, full table of contents), then one
article per section; a section too long for one article is split between
items ("（续）" parts), and an item too long for one article is split at
paragraph boundaries into continuation parts ("title（续）"; the metadata stays
with the first).  If that gives more than 8 articles, adjacent small sections
share an article; if it still does not fit, or one paragraph alone is too
long, :class:`~.errors.WeChatLimitError` says which and by how much.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

from markupsafe import Markup

from newsletter.content.model import Block, Image, Issue, Item, Section
from newsletter.render.common import (
    BlockStyle,
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
from newsletter.render.views import Hooks, build_item

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

S: dict[str, str] = {
    "root": "font-size:15px;line-height:1.75;color:#333;letter-spacing:0.5px;"
    "overflow-wrap:break-word;word-wrap:break-word",
    "sub": "margin:0 0 4px;font-size:13px;color:#888",
    "h2": "margin:0 0 16px;padding:0 0 6px;font-size:18px;font-weight:bold;color:#1f4e79;"
    "border-bottom:2px solid #1f4e79",
    "h3": "margin:24px 0 10px;font-size:16px;font-weight:bold;line-height:1.5;color:#111",
    "meta": "width:100%;margin:0 0 12px;border-collapse:collapse;font-size:13px;background:#f7f8fa",
    "mk": "padding:4px 8px;color:#888;white-space:nowrap;vertical-align:top",
    "mv": "padding:4px 8px;color:#333;word-break:break-all",
    "ana": "margin:4px 0 18px;padding:12px 14px 2px;background:#eef3f9;"
    "border-left:3px solid #1f4e79",
    "al": "margin:0 0 6px;font-weight:bold;color:#1f4e79",
    "toc": "margin:16px 0;padding:12px 14px;background:#f7f8fa;font-size:14px",
    "toc_h": "margin:0 0 6px;font-weight:bold;color:#1f4e79",
    "toc_s": "margin:8px 0 2px;font-weight:bold",
    "toc_i": "margin:0 0 2px 1em",
    "toc_note": "margin:10px 0 0;font-size:13px;color:#888",
    "notes": "margin:28px 0 0;padding:10px 0 0;border-top:1px solid #e5e5e5;font-size:12px;"
    "color:#888;line-height:1.6",
    "notes_h": "margin:0 0 6px;font-weight:bold",
    "note": "margin:0 0 4px;word-break:break-all",
    "tail": "margin:24px 0 0;font-size:12px;color:#aaa;text-align:center",
}
_BLOCK_CSS = BlockStyle(
    {
        "p": "margin:0 0 14px",
        "qp": "margin:0",
        "h4": "margin:16px 0 8px;font-size:15px;font-weight:bold",
        "blockquote": "margin:0 0 14px;padding:0 0 0 12px;border-left:3px solid #d9dde3;color:#666",
        "ul": "margin:0 0 14px;padding-left:1.5em",
        "ol": "margin:0 0 14px;padding-left:1.5em",
        "li": "margin:0 0 4px",
        "table": "width:100%;border-collapse:collapse;font-size:13px",
        "tablewrap": "margin:0 0 14px;overflow-x:auto",
        "figure": "margin:0 0 14px;text-align:center",
        "img": "max-width:100%;height:auto",
        "caption": "font-size:12px;color:#888",
        "hr": "border:0;border-top:1px solid #ddd;margin:20px 0",
        "pre": "white-space:pre-wrap;font-size:13px;background:#f5f5f5;padding:8px",
    }
)
_CELL_CSS = "border:1px solid #ddd;padding:4px 6px"
_SUP = "font-size:11px;color:#888"
_MARK = re.compile("\ue000(\\d+)\ue001")
_CELL_RE = re.compile(r"<(td|th)\b([^>]*)>", re.I)
_ATTR_RE = re.compile(r"""\s(?:class|id)\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""", re.I)
_TAG_RE = re.compile(r"<[a-zA-Z][^>]*>")
_DROP_RE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I)


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


@dataclass
class _Fragment:
    """Rendered HTML with local footnote markers, its URLs and image hashes."""

    html: str
    urls: list[str]
    images: list[str]


class _Collector:
    def __init__(self, variant: str) -> None:
        self.see = labels(variant)["see_note"]
        self.urls: list[str] = []
        self.images: list[str] = []

    def ref(self, url: str) -> str:
        """The footnote number of ``url``: one URL, one number, however often it is cited."""
        if url not in self.urls:
            self.urls.append(url)
        return f"\ue000{self.urls.index(url) + 1}\ue001"

    def anchor(self, href: str, inner: str, hint: int | None = None) -> str:
        if not href or href.startswith("#"):
            return inner
        return f'{inner}<sup style="{_SUP}">[{self.ref(href)}]</sup>'

    def meta_url(self, url: str, hint: int | None = None) -> str:
        return self.see.format(n=self.ref(url))

    def image(self, im: Image) -> str:
        if im.sha256:
            if im.sha256 not in self.images:
                self.images.append(im.sha256)
            return f"wxasset:{im.sha256}"
        return im.src

    def hooks(self) -> Hooks:
        return Hooks(anchor=self.anchor, image=self.image, meta_url=self.meta_url, style=_BLOCK_CSS)

    def fragment(self, html: str) -> _Fragment:
        return _Fragment(html, self.urls, self.images)


def _style_cells(html: str) -> str:
    def sub(m: re.Match[str]) -> str:
        attrs = m.group(2)
        if 'style="' in attrs:
            attrs = attrs.replace('style="', f'style="{_CELL_CSS};', 1)
        else:
            attrs = f' style="{_CELL_CSS}"{attrs}'
        return f"<{m.group(1)}{attrs}>"

    return _CELL_RE.sub(sub, html)


def _sanitize(html: str) -> str:
    """Drop <script>/<style> elements and every class/id attribute."""
    html = _DROP_RE.sub("", html)
    return _TAG_RE.sub(lambda m: _ATTR_RE.sub("", m.group(0)), html)


def _renumber(fragments: list[_Fragment]) -> tuple[list[str], list[str], list[str]]:
    """Article-wide footnote numbers; returns html per fragment, urls, images."""
    out: list[str] = []
    urls: list[str] = []
    number: dict[str, int] = {}  # one URL, one number, across the whole article
    images: list[str] = []
    for f in fragments:
        for u in f.urls:
            if u not in number:
                urls.append(u)
                number[u] = len(urls)
        local = [number[u] for u in f.urls]
        out.append(_MARK.sub(lambda m, n=local: str(n[int(m.group(1)) - 1]), f.html))  # type: ignore[misc]
        images += [h for h in f.images if h not in images]
    return out, urls, images


@dataclass
class _Chunk:
    section: Section
    intro: _Fragment | None
    items: list[tuple[Item, _Fragment]]
    continued: bool


def _item_fragment(issue: Issue, section: Section, item: Item) -> _Fragment:
    c = _Collector(issue.variant)
    view = build_item(issue, section, item, c.hooks())
    view.body = Markup(_style_cells(view.body))
    view.analysis = Markup(_style_cells(view.analysis))
    return c.fragment(render_template("wechat/item.html", it=view, S=S))


def _intro_fragment(issue: Issue, section: Section) -> _Fragment | None:
    if not section.intro:
        return None
    c = _Collector(issue.variant)
    h = c.hooks()
    return c.fragment(
        _style_cells(
            blocks_html(section.intro, issue, anchor=h.anchor, image=h.image, style=_BLOCK_CSS)
        )
    )


#: The subscribe URL of the issue being rendered (set by :func:`render_wechat`), read
#: where section articles are assembled, many calls deep.
_SUBSCRIBE: ContextVar[str] = ContextVar("wechat_subscribe_url", default="")


def _assemble(issue: Issue, chunks: list[_Chunk]) -> tuple[str, list[str]]:
    frags: list[_Fragment] = []
    shape: list[tuple[bool, int]] = []
    for ch in chunks:
        if ch.intro is not None:
            frags.append(ch.intro)
        shape.append((ch.intro is not None, len(ch.items)))
        frags += [f for _, f in ch.items]
    htmls, urls, images = _renumber(frags)
    view = []
    k = 0
    for ch, (has_intro, n) in zip(chunks, shape, strict=True):
        intro = Markup(htmls[k]) if has_intro else None
        k += 1 if has_intro else 0
        view.append(
            {
                "label": section_label(ch.section),
                "continued": ch.continued,
                "intro": intro,
                "entries": [Markup(h) for h in htmls[k : k + n]],
            }
        )
        k += n
    L = labels(issue.variant)
    content = render_template(
        "wechat/article.html",
        chunks=view,
        notes=urls,
        S=S,
        L=L,
        issue=issue,
        issue_no=issue_no(issue.number, issue.variant),
        subscribe_url=_SUBSCRIBE.get(),
    )
    return _sanitize(content), images


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


def _balanced(weights: list[int], k: int) -> list[int]:
    """Cut points splitting ``weights`` into ``k`` contiguous runs with the least maximum."""
    n = len(weights)
    pre = [0]
    for w in weights:
        pre.append(pre[-1] + w)
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0
    for j in range(1, k + 1):
        for i in range(1, n + 1):
            for m in range(j - 1, i):
                v = max(best[j - 1][m], pre[i] - pre[m])
                if v < best[j][i]:
                    best[j][i], cut[j][i] = v, m
    cuts = []
    i = n
    for j in range(k, 0, -1):
        cuts.append(i)
        i = cut[j][i]
    return sorted(cuts)


def _item_parts(
    issue: Issue, s: Section, it: Item, frag: _Fragment, limit: int
) -> list[tuple[Item, _Fragment]]:
    """The item as one fragment, or split at paragraph boundaries into continuation parts.

    The first part keeps the metadata; later parts are titled "title（续）".
    Body paragraphs come first, then the analysis (its label repeated on
    each part that holds some of it).
    """
    if len(frag.html) < limit // 2 or (
        len(_assemble(issue, [_Chunk(s, None, [(it, frag)], False)])[0]) < limit
    ):
        return [(it, frag)]
    units = [("body", b) for b in it.body] + [("analysis", b) for b in it.analysis]
    cont = labels(issue.variant)["continued"]

    def piece(k: int, chosen: list[tuple[str, Block]]) -> Item:
        body = [b for kind, b in chosen if kind == "body"]
        analysis = [b for kind, b in chosen if kind == "analysis"]
        return replace(
            it,
            title=it.title if k == 0 else f"{it.title}{cont}",
            meta=list(it.meta) if k == 0 else [],
            body=body,
            analysis=analysis,
            analysis_label=it.analysis_label if analysis else None,
            summary=it.summary if k == 0 else None,
        )

    def size(item: Item) -> int:
        f = _item_fragment(issue, s, item)
        return len(_assemble(issue, [_Chunk(s, None, [(item, f)], True)])[0])

    parts: list[tuple[Item, _Fragment]] = []
    current: list[tuple[str, Block]] = []
    for unit in units:
        n = size(piece(len(parts), [*current, unit]))
        if n < limit:
            current.append(unit)
            continue
        if current:
            done = piece(len(parts), current)
            parts.append((done, _item_fragment(issue, s, done)))
            current = [unit]
            n = size(piece(len(parts), current))
        if n >= limit:
            raise WeChatLimitError(
                f"WeChat: a paragraph of item {s.numeral or s.number}.{it.number} 《{it.title}》 "
                f"alone is {n:,} characters with markup; an article must stay below {limit:,}. "
                "Split that paragraph in the source."
            )
    if current or not parts:
        done = piece(len(parts), current)
        parts.append((done, _item_fragment(issue, s, done)))
    return parts


def _split_section(issue: Issue, s: Section, limit: int) -> list[_Chunk]:
    """The section as one chunk, or as few balanced chunks as fit (split between items)."""
    intro = _intro_fragment(issue, s)
    items = [(it, _item_fragment(issue, s, it)) for it in s.items]
    whole = _Chunk(s, intro, items, False)
    if len(_assemble(issue, [whole])[0]) < limit:
        return [whole]
    if not items:  # the introduction alone is too long: nothing to split between
        size = len(_assemble(issue, [whole])[0])
        raise WeChatLimitError(
            f"WeChat: section {s.numeral or s.number} 《{s.title}》 has no items and its "
            f"introduction alone is {size:,} characters with markup; an article must stay "
            f"below {limit:,}. Shorten it (is a code fence ``` left open?)."
        )
    # an item too long for one article becomes continuation parts
    items = [part for it, frag in items for part in _item_parts(issue, s, it, frag, limit)]
    # Greedy first: it finds the smallest number of parts.
    chunks: list[_Chunk] = []
    cur = _Chunk(s, intro, [], False)
    for it, frag in items:
        trial = _Chunk(s, cur.intro, [*cur.items, (it, frag)], cur.continued)
        if len(_assemble(issue, [trial])[0]) < limit:
            cur = trial
            continue
        if cur.items:
            chunks.append(cur)
            cur = _Chunk(s, None, [(it, frag)], True)
            size = len(_assemble(issue, [cur])[0])
        else:
            size = len(_assemble(issue, [trial])[0])
        if size >= limit:
            raise WeChatLimitError(
                f"WeChat: item {s.numeral or s.number}.{it.number} 《{it.title}》 alone is "
                f"{size:,} characters with markup; an article must stay below {limit:,}. "
                "Shorten the item or split it into two items in the source."
            )
    chunks.append(cur)
    # Then even the parts out, if the balanced cut still fits everywhere.
    weights = [len(f.html) for _, f in items]
    if intro is not None:
        weights[0] += len(intro.html)
    start = 0
    balanced: list[_Chunk] = []
    for end in _balanced(weights, len(chunks)):
        balanced.append(_Chunk(s, intro if start == 0 else None, items[start:end], start > 0))
        start = end
    if all(c.items and len(_assemble(issue, [c])[0]) < limit for c in balanced):
        return balanced
    return chunks


def _merge(issue: Issue, groups: list[list[_Chunk]], limit: int, room: int) -> list[list[_Chunk]]:
    """Let adjacent small groups share an article until ``room`` articles suffice."""
    while len(groups) > room:
        best: tuple[int, int] | None = None
        for i in range(len(groups) - 1):
            size = len(_assemble(issue, groups[i] + groups[i + 1])[0])
            if size < limit and (best is None or size < best[1]):
                best = (i, size)
        if best is None:
            break
        i = best[0]
        groups[i : i + 2] = [groups[i] + groups[i + 1]]
    return groups


def _headline(issue: Issue, ctx: RenderContext) -> WeChatArticle:
    L = labels(issue.variant)
    c = _Collector(issue.variant)
    h = c.hooks()
    intro = c.fragment(
        _style_cells(
            blocks_html(issue.intro, issue, anchor=h.anchor, image=h.image, style=_BLOCK_CSS)
        )
    )
    htmls, urls, images = _renumber([intro])
    inline: dict[str, bytes] = {}
    if ctx.wechat_qr:
        from newsletter.render.qr import qr_png, qr_sha256

        png = qr_png(ctx.subscribe_url("wechat-qr"))
        inline[qr_sha256(png)] = png
        images = [*images, qr_sha256(png)]
    content = _sanitize(
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
    chunks: list[_Chunk],
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
    _SUBSCRIBE.set(ctx.subscribe_url())
    head = _headline(issue, ctx)
    if head.char_count >= limit:
        raise WeChatLimitError(
            f"WeChat: the headline article (intro + table of contents) is {head.char_count:,} "
            f"characters; it must stay below {limit:,}. Shorten the issue intro."
        )
    groups: list[list[_Chunk]] = []
    per_section: list[int] = []
    for s in issue.sections:
        parts = _split_section(issue, s, limit)
        per_section.append(len(parts))
        groups += [[p] for p in parts]
    groups = _merge(issue, groups, limit, MAX_ARTICLES - 1)
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
        content, images = _assemble(issue, g)
        if len(content.encode()) >= MAX_CONTENT_BYTES:
            raise WeChatLimitError(f"WeChat: article is {len(content.encode()):,} bytes (≥ 1 MB)")
        articles.append(_section_article(issue, ctx, g, part, content, images))
    return articles
