"""Helpers shared by every channel: anchors, summaries, links, images, blocks.

Guarantees:

* :func:`section_anchor` / :func:`item_anchor` give the same stable anchor in
  the email, the web page and the archive links (``s1``, ``s1-i2`` unless the
  model already carries an anchor).
* :class:`LinkIndex` maps each ``<a href>`` met in document order to the
  :class:`~newsletter.content.model.Link` position of the same URL, so click
  URLs name the link the parser numbered.
* :func:`block_html` turns a model block into HTML without re-parsing any
  rendered channel; inline HTML from the model is trusted (it is sanitised by
  the parser) and only its ``<a>`` and ``<img>`` tags are rewritten.
"""

from __future__ import annotations

import html as _html
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from newsletter.content.model import Block, Image, Issue, Item, Link, Section
from newsletter.core.safety.headers import clean_text
from newsletter.core.safety.urlpolicy import safe_url
from newsletter.render.labels import issue_no

__all__ = [
    "AnchorHook",
    "BlockStyle",
    "ImageHook",
    "LinkIndex",
    "TocEntry",
    "block_html",
    "blocks_html",
    "href_of",
    "image_url",
    "link_hint",
    "item_anchor",
    "item_summary",
    "preheader",
    "rewrite_anchors",
    "rewrite_images",
    "section_anchor",
    "section_label",
    "strip_tags",
    "subject",
    "toc",
    "truncate",
]

#: ``hook(href, inner_html, position) -> replacement html`` for every ``<a>`` in
#: model HTML; ``position`` is the parser's ``data-link`` number when present.
AnchorHook = Callable[[str, str, int | None], str]
#: ``hook(image) -> src`` for every image.
ImageHook = Callable[[Image], str]

_A_RE = re.compile(r"<a\b([^>]*)>(.*?)</a\s*>", re.S | re.I)
_HREF_RE = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_DATA_LINK_RE = re.compile(r"""\bdata-link\s*=\s*["']?(\d+)""", re.I)
_IMG_RE = re.compile(r"<img\b[^>]*>", re.I)
_SRC_RE = re.compile(r"""\bsrc\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_ALT_RE = re.compile(r"""\balt\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_TAG_RE = re.compile(r"<[^>]*>")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_WS_RE = re.compile(r"\s+")
_SENTENCE_END = "。！？；!?;"


def section_label(section: Section) -> str:
    """``一、政策法规`` (or just the title when the section has no numeral)."""
    return f"{section.numeral}、{section.title}" if section.numeral else section.title


def section_anchor(section: Section) -> str:
    return section.anchor or f"s{section.number}"


def item_anchor(section: Section, item: Item) -> str:
    return item.anchor or f"s{section.number}-i{item.number}"


def strip_tags(s: str) -> str:
    """Plain text of a fragment of inline HTML (tags dropped, entities decoded)."""
    return _html.unescape(_TAG_RE.sub("", s))


def truncate(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters.

    Cuts after the last sentence end in the second half of the allowance when
    there is one, otherwise at ``limit - 1`` characters followed by ``…``.
    """
    text = _WS_RE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = max(head.rfind(c) for c in _SENTENCE_END)
    if cut >= limit // 2:
        return head[: cut + 1]
    return text[: limit - 1].rstrip() + "…"


def _first_paragraph(blocks: list[Block]) -> str | None:
    for b in blocks:
        if b.kind == "paragraph" and b.text.strip():
            return b.text
    return None


def item_summary(item: Item, limit: int = 120) -> str:
    """``item.summary``, else the analysis's first paragraph, else the body's."""
    s = item.summary or _first_paragraph(item.analysis) or _first_paragraph(item.body) or ""
    if "<" in s:
        s = strip_tags(s)
    return truncate(s, limit)


def subject(issue: Issue) -> str:
    no = issue_no(issue.number, issue.variant)
    title = clean_text(issue.title)  # a header: one line, no control characters
    if not no or no in title:
        return title
    return f"{title}｜{no}"


def preheader(issue: Issue, limit: int = 100) -> str:
    """The preheader: front matter, else the intro, else the item titles."""
    if issue.preheader.strip():
        return truncate(issue.preheader, limit)
    first = _first_paragraph(issue.intro)
    if first:
        return truncate(first, limit)
    return truncate("；".join(i.title for _, i in issue.iter_items()), limit)


@dataclass(slots=True)
class TocEntry:
    """One line of the table of contents."""

    level: int  # 1 section, 2 item
    label: str  # "一、政策法规" / "1. 标题"
    title: str
    anchor: str
    summary: str = ""
    children: list[TocEntry] = field(default_factory=list)


def toc(issue: Issue, *, with_summaries: bool = False) -> list[TocEntry]:
    """Sections with their items, in document order."""
    out: list[TocEntry] = []
    for s in issue.sections:
        sec = TocEntry(1, section_label(s), s.title, section_anchor(s))
        for it in s.items:
            sec.children.append(
                TocEntry(
                    2,
                    f"{it.number}. {it.title}",
                    it.title,
                    item_anchor(s, it),
                    item_summary(it) if with_summaries else "",
                )
            )
        out.append(sec)
    return out


class LinkIndex:
    """Resolves URLs met in document order to :attr:`Link.position`.

    When a URL occurs several times and the parser numbered each occurrence,
    the k-th occurrence gets the k-th position (the last one is reused after
    that).  A URL the parser did not number resolves to ``None``.
    """

    def __init__(self, links: list[Link]) -> None:
        self._by_url: dict[str, list[int]] = defaultdict(list)
        for link in sorted(links, key=lambda x: x.position):
            self._by_url[link.url].append(link.position)
        self._seen: Counter[str] = Counter()
        self.used: list[int] = []

    def position(self, url: str, hint: int | None = None) -> int | None:
        """Position of this occurrence of ``url``; ``hint`` (the parser's own number) wins."""
        if hint is not None:
            pos: int | None = hint
        else:
            positions = self._by_url.get(url)
            if not positions:
                return None
            k = self._seen[url]
            self._seen[url] += 1
            pos = positions[min(k, len(positions) - 1)]
        if pos is not None and pos not in self.used:
            self.used.append(pos)
        return pos


def href_of(attrs: str) -> str:
    m = _HREF_RE.search(attrs)
    if not m:
        return ""
    return _html.unescape(m.group(1) if m.group(1) is not None else m.group(2))


def link_hint(attrs: str) -> int | None:
    """The parser's ``data-link`` position in an ``<a>`` tag's attributes, if any."""
    m = _DATA_LINK_RE.search(attrs)
    return int(m.group(1)) if m else None


def rewrite_anchors(fragment: str, hook: AnchorHook) -> str:
    """Replace every ``<a …>inner</a>`` of ``fragment`` by ``hook(href, inner, position)``."""
    if "<a" not in fragment and "<A" not in fragment:
        return fragment

    def sub(m: re.Match[str]) -> str:
        href = href_of(m.group(1))
        if safe_url(href, mailto=True, fragment=True) is None:
            return m.group(2)  # the URL policy refuses it: the text stays, the link goes
        return hook(href, m.group(2), link_hint(m.group(1)))

    return _A_RE.sub(sub, fragment)


def rewrite_images(fragment: str, issue: Issue, hook: ImageHook) -> str:
    """Give every ``<img>`` of ``fragment`` the src chosen by ``hook``."""
    if "<img" not in fragment:
        return fragment
    by_src = {im.src: im for im in issue.images}

    def sub(m: re.Match[str]) -> str:
        tag = m.group(0)
        sm = _SRC_RE.search(tag)
        if not sm:
            return tag
        src = _html.unescape(sm.group(1) if sm.group(1) is not None else sm.group(2))
        am = _ALT_RE.search(tag)
        alt = _html.unescape((am.group(1) or am.group(2) or "") if am else "")
        if _SCHEME_RE.match(src.strip()) and safe_url(src) is None:
            return _html.escape(alt)  # javascript:, data:, file: … never become an image
        image = by_src.get(src) or Image(src=src, alt=alt)
        new = f'src="{_html.escape(hook(image))}"'
        return tag[: sm.start()] + new + tag[sm.end() :]

    return _IMG_RE.sub(sub, fragment)


def image_url(base_url: str, image: Image) -> str:
    """Public URL of an image: absolute sources stay, local files are served by hash.

    The web app serves a local image (one whose ``sha256`` the parser filled)
    at ``{base_url}/media/{sha256}``.
    """
    src = image.src
    if _SCHEME_RE.match(src.strip()):
        return safe_url(src) or ""
    if not image.sha256:
        return src
    return f"{base_url}/media/{image.sha256}"


@dataclass(slots=True)
class BlockStyle:
    """Optional inline style (WeChat) and raw presentational attributes (email) per tag."""

    css: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    def attr(self, tag: str, cls: str = "") -> str:
        """`` style="…"`` for ``tag`` if styled, else `` class="cls"`` (or nothing)."""
        v = self.css.get(tag)
        more = f" {self.extra[tag]}" if tag in self.extra else ""
        if v:
            return f' style="{v}"{more}'
        return (f' class="{cls}"' if cls else "") + more


_NO_STYLE = BlockStyle()


def _wrapped(inner: str, tag: str, st: BlockStyle) -> str:
    if inner.lstrip().lower().startswith(f"<{tag}"):
        return inner
    return f"<{tag}{st.attr(tag)}>{inner}</{tag}>"


def block_html(
    block: Block,
    issue: Issue,
    *,
    anchor: AnchorHook,
    image: ImageHook,
    style: BlockStyle = _NO_STYLE,
) -> str:
    """HTML of one model block, with links and images rewritten by the hooks."""
    k = block.kind
    inner = rewrite_images(rewrite_anchors(block.html, anchor), issue, image)
    if k == "paragraph":
        return _wrapped(inner, "p", style)
    if k == "heading":
        return _wrapped(inner, "h4", style)
    if k == "quote":
        body = inner if "<p" in inner else f"<p{style.attr('qp')}>{inner}</p>"
        return _wrapped(body, "blockquote", style)
    if k == "list":
        tag = "ol" if block.ordered else "ul"
        if block.items_html:
            lis = "".join(
                f"<li{style.attr('li')}>"
                f"{rewrite_images(rewrite_anchors(x, anchor), issue, image)}</li>"
                for x in block.items_html
            )
        elif block.items and "<li" not in inner:
            lis = "".join(f"<li{style.attr('li')}>{_html.escape(x)}</li>" for x in block.items)
        else:
            lis = inner
        return _wrapped(lis, tag, style)
    if k == "table":
        if "<tr" not in inner and block.rows:
            rows = []
            for r, cells in enumerate(block.rows):
                t = "th" if r == 0 else "td"
                rows.append(
                    "<tr>"
                    + "".join(f"<{t}>{_html.escape(strip_tags(c))}</{t}>" for c in cells)
                    + "</tr>"
                )
            inner = "".join(rows)
        table = _wrapped(inner, "table", style)
        return f"<div{style.attr('tablewrap', 'tw')}>{table}</div>"
    if k == "image":
        im = block.image
        if im is None:
            return _wrapped(inner, "p", style) if inner else ""
        src = _html.escape(image(im))
        alt = _html.escape(im.alt)
        cap = f"<br><span{style.attr('caption', 'cap')}>{alt}</span>" if im.alt else ""
        return (
            f'<p{style.attr("figure", "fig")}><img src="{src}" alt="{alt}"'
            f"{style.attr('img')}>{cap}</p>"
        )
    if k == "rule":
        return f"<hr{style.attr('hr')}>"
    if k == "code":
        if inner.lstrip().startswith("<pre"):
            return inner
        return f"<pre{style.attr('pre')}><code>{inner}</code></pre>"
    return _wrapped(inner, "p", style)


def blocks_html(
    blocks: list[Block],
    issue: Issue,
    *,
    anchor: AnchorHook,
    image: ImageHook,
    style: BlockStyle = _NO_STYLE,
) -> str:
    return "".join(block_html(b, issue, anchor=anchor, image=image, style=style) for b in blocks)
