"""The HTML of WeChat articles: inline styles only, footnoted links, ``wxasset:`` images.

External links are not clickable in WeChat, so each becomes a numbered reference ``[n]``
listed with its URL (as text) at the end of the article; one URL keeps one number across
the article. ``<script>``, ``<style>``, ``class=`` and ``id=`` never reach the content.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass

from markupsafe import Markup

from newsletter.content.model import Image, Issue, Item, Section
from newsletter.render.common import BlockStyle, blocks_html, section_label
from newsletter.render.labels import issue_no, labels
from newsletter.render.templating import render_template
from newsletter.render.views import Hooks, build_item

__all__ = [
    "BLOCK_CSS",
    "S",
    "SUBSCRIBE",
    "Chunk",
    "Collector",
    "Fragment",
    "assemble",
    "intro_fragment",
    "item_fragment",
    "renumber",
    "sanitize",
    "style_cells",
]

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
BLOCK_CSS = BlockStyle(
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
class Fragment:
    """Rendered HTML with local footnote markers, its URLs and image hashes."""

    html: str
    urls: list[str]
    images: list[str]


class Collector:
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
        return Hooks(anchor=self.anchor, image=self.image, meta_url=self.meta_url, style=BLOCK_CSS)

    def fragment(self, html: str) -> Fragment:
        return Fragment(html, self.urls, self.images)


def style_cells(html: str) -> str:
    def sub(m: re.Match[str]) -> str:
        attrs = m.group(2)
        if 'style="' in attrs:
            attrs = attrs.replace('style="', f'style="{_CELL_CSS};', 1)
        else:
            attrs = f' style="{_CELL_CSS}"{attrs}'
        return f"<{m.group(1)}{attrs}>"

    return _CELL_RE.sub(sub, html)


def sanitize(html: str) -> str:
    """Drop <script>/<style> elements and every class/id attribute."""
    html = _DROP_RE.sub("", html)
    return _TAG_RE.sub(lambda m: _ATTR_RE.sub("", m.group(0)), html)


def renumber(fragments: list[Fragment]) -> tuple[list[str], list[str], list[str]]:
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
class Chunk:
    section: Section
    intro: Fragment | None
    items: list[tuple[Item, Fragment]]
    continued: bool


def item_fragment(issue: Issue, section: Section, item: Item) -> Fragment:
    c = Collector(issue.variant)
    view = build_item(issue, section, item, c.hooks())
    view.body = Markup(style_cells(view.body))
    view.analysis = Markup(style_cells(view.analysis))
    return c.fragment(render_template("wechat/item.html", it=view, S=S))


def intro_fragment(issue: Issue, section: Section) -> Fragment | None:
    if not section.intro:
        return None
    c = Collector(issue.variant)
    h = c.hooks()
    return c.fragment(
        style_cells(
            blocks_html(section.intro, issue, anchor=h.anchor, image=h.image, style=BLOCK_CSS)
        )
    )


#: The subscribe URL of the issue being rendered (set by :func:`render_wechat`), read
#: where section articles are assembled, many calls deep.
SUBSCRIBE: ContextVar[str] = ContextVar("wechat_subscribe_url", default="")


def assemble(issue: Issue, chunks: list[Chunk]) -> tuple[str, list[str]]:
    frags: list[Fragment] = []
    shape: list[tuple[bool, int]] = []
    for ch in chunks:
        if ch.intro is not None:
            frags.append(ch.intro)
        shape.append((ch.intro is not None, len(ch.items)))
        frags += [f for _, f in ch.items]
    htmls, urls, images = renumber(frags)
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
        subscribe_url=SUBSCRIBE.get(),
    )
    return sanitize(content), images
