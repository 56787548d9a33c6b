"""A saved web page, a WeChat article (.html, .htm, .mhtml) or rich text pasted from a
browser → :class:`~newsletter.content.source.SourceText`.

The main content is found first: a WeChat article's body (``#js_content``) and
title (``#activity-name``) when present, else readability's extraction of the
page's main block; short fragments (a paste) are taken whole.  Then the blocks
are walked in order: headings give levels, a paragraph whose text is all bold
is a heading candidate, tables stay tables, links keep their addresses.
Images: ``data:`` URIs and MHTML parts are kept; an image only on another
server is kept as a link (never fetched here) and noted.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hashlib
import html
import re
from typing import Any

from newsletter.content.source import Cell, Image, Para, SourceText, add_table, infer_structure
from newsletter.core.catalogue import coded, message
from newsletter.core.errors import IssueFormatError

__all__ = ["is_html", "read_html"]

_BLOCKS = {
    "p", "div", "section", "article", "li", "blockquote", "pre", "figure", "figcaption",
    "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "dt", "dd", "header", "footer",
    "table", "tr", "td", "th", "tbody", "thead", "tfoot", "main", "aside", "nav", "hr",
    "details", "summary", "center", "address", "fieldset", "legend", "caption", "dialog",
}  # fmt: skip
_SKIP = {"script", "style", "noscript", "template", "svg", "button", "iframe", "form", "select"}
_SAFE_LINK = re.compile(r"^(?:https?://|mailto:)[^\s<>\"]+$", re.I)
_IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def is_html(data: bytes, name: str = "") -> bool:
    if name.lower().endswith((".html", ".htm", ".mhtml", ".mht", ".xhtml")):
        return True
    head = data[:2048].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"mime-version:")) or b"<body" in head


def _decode(data: bytes, charset: str | None = None) -> str:
    from newsletter.content.decode import decode_source

    m = re.search(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_\-]+)", data[:4096], re.I)
    for enc in (charset, m.group(1).decode("ascii") if m else None):
        if enc:
            try:
                return data.decode(enc)
            except (LookupError, UnicodeDecodeError):
                pass
    return decode_source(data)[0]


def _mhtml(data: bytes) -> tuple[str, dict[str, tuple[str, bytes]]]:
    """The HTML part of an MHTML archive and its other parts by Content-Location."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    html = ""
    parts: dict[str, tuple[str, bytes]] = {}
    for part in msg.walk():
        if part.is_multipart():
            continue
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        ctype = part.get_content_type()
        if ctype == "text/html" and not html:
            html = _decode(payload, part.get_content_charset())
        elif location := part.get("Content-Location"):
            parts[str(location)] = (ctype, payload)
    return html, parts


def _decoration(el: Any, src: str) -> bool:
    """An animated GIF or an icon-sized picture (a badge, a divider, a 01 on a ribbon):
    decoration of the page, not content of the brief."""
    declared = " ".join(str(el.get(k) or "") for k in ("data-type", "type")).lower()
    if "gif" in declared or re.search(r"(?i)(\.gif\b|wx_fmt=gif|mmbiz_gif)", src):
        return True
    style = str(el.get("style") or "")
    sizes = [
        el.get("width"),
        el.get("data-w"),
        *re.findall(r"(?<![-\w])width\s*:\s*(\d+)px", style),
    ]
    widths = [int(w) for w in sizes if w and str(w).isdigit()]
    return bool(widths) and min(widths) <= 120


class _Walker:
    def __init__(self, parts: dict[str, tuple[str, bytes]]) -> None:
        self.src = SourceText(kind="html")
        self.parts = parts
        self.paras: list[Para] = []
        self.images: dict[str, Image] = {}

    # one block of inline content → one line
    def inline(
        self,
        el: Any,
        out: list[str],
        links: list[tuple[str, str]],
        bold: list[bool],
        strong: bool = False,
    ) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in _SKIP:
            return
        strong = strong or tag in ("b", "strong") or _bold_style(el)
        if el.text:
            out.append(el.text)
            if el.text.strip():
                bold.append(strong)
        for child in el:
            if not isinstance(child.tag, str):  # a comment (<!--StartFragment-->): skip it
                if child.tail:
                    out.append(child.tail)
                continue
            ctag = child.tag
            if ctag == "br":
                out.append("\n")
            elif ctag == "img":
                self.image(child)
            elif ctag == "a":
                start = len("".join(out))
                self.inline(child, out, links, bold, strong)
                label = "".join(out)[start:].strip()
                href = (child.get("href") or "").strip()
                if label and _SAFE_LINK.match(href):
                    links.append((label, href))
            elif ctag not in _BLOCKS:
                _apart(out, child)
                self.inline(child, out, links, bold, strong)
            else:  # a block inside a line (<span><p>…</p></span>): its words on lines of their own
                out.append("\n")
                self.inline(child, out, links, bold, strong)
                out.append("\n")
            if child.tail:
                out.append(child.tail)
                if child.tail.strip():
                    bold.append(strong)

    def image(self, el: Any) -> None:
        src = (el.get("data-src") or el.get("src") or "").strip()
        inline = (el.get("src") or "").strip()
        if inline.startswith("data:image/") and not inline.startswith("data:image/svg"):
            src = inline  # the picture itself, saved in the page (WeChat's lazy placeholder is an SVG)
        alt = (el.get("alt") or "").strip()
        if _decoration(el, src):
            self.src.notes.append(message("import.decoration", src=src[:80]).line())
            return
        data: bytes | None = None
        ctype = ""
        if src.startswith("data:image/"):
            head, _, body = src.partition(",")
            ctype = head[5:].split(";")[0]
            try:
                data = base64.b64decode(body, validate=False) if ";base64" in head else None
            except (binascii.Error, ValueError):
                data = None
        elif src in self.parts:
            ctype, data = self.parts[src]
        if data and ctype in _IMAGE_TYPES:
            digest = hashlib.sha256(data).hexdigest()[:12]
            image = self.images.setdefault(
                digest, Image(f"web-{digest}.{_IMAGE_TYPES[ctype]}", data, alt)
            )
            self.src.add_image(image)
        elif alt and (_heading_alt(alt) or _chrome_alt(alt)):
            # a heading drawn as a picture (一、中央政策 on a banner), or page furniture
            # (往期推荐): its words are the line, and the line is judged like any other
            self.src.add(alt)
        elif _SAFE_LINK.match(src) and src.startswith("http"):
            self.src.add(f"图片：{alt or src}", links=[(alt or src, src)] if alt else None)
            self.src.notes.append(message("import.remote_image", src=src[:80]).line())

    def block(self, el: Any) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in _SKIP:
            return
        if tag == "table":
            self.table(el)
            return
        if tag == "hr":
            self.src.add("")
            return
        has_blocks = any(isinstance(c.tag, str) and c.tag in _BLOCKS for c in el)
        if not has_blocks:
            self.line(el, tag)
            return
        # mixed: text runs between child blocks are lines of their own
        buffer: list[Any] = []
        if el.text and el.text.strip():
            self.src.add(el.text.strip())
        for child in el:
            if not isinstance(child.tag, str):  # a comment: only its tail is text
                if child.tail and child.tail.strip():
                    self.flush(buffer)
                    self.src.add(child.tail.strip())
                continue
            ctag = child.tag
            if ctag in _BLOCKS:
                self.flush(buffer)
                self.block(child)
                if child.tail and child.tail.strip():
                    self.src.add(child.tail.strip())
            else:
                buffer.append(child)
        self.flush(buffer)

    def flush(self, buffer: list[Any]) -> None:
        if not buffer:
            return
        out: list[str] = []
        links: list[tuple[str, str]] = []
        bold: list[bool] = []
        for child in buffer:
            ctag = child.tag if isinstance(child.tag, str) else ""
            if ctag == "img":
                self.image(child)
            else:
                _apart(out, child)
                self.inline(child, out, links, bold)
            if child.tail:
                out.append(child.tail)
        size = max((_size(child) for child in buffer), default=0.0)
        buffer.clear()
        self.emit("".join(out), links, None, bool(bold) and all(bold), size)

    def line(self, el: Any, tag: str) -> None:
        out: list[str] = []
        links: list[tuple[str, str]] = []
        bold: list[bool] = []
        self.inline(el, out, links, bold)
        level = int(tag[1]) if re.fullmatch(r"h[1-6]", tag) else None
        self.emit("".join(out), links, level, bool(bold) and all(bold), _size(el))

    def emit(
        self,
        text: str,
        links: list[tuple[str, str]],
        level: int | None,
        bold: bool,
        size: float = 0.0,
    ) -> None:
        for k, part in enumerate(text.split("\n")):
            part = " ".join(part.split())
            if not part:
                continue
            n = self.src.add(part, links=[(t, u) for t, u in links if t in part])
            if k == 0:
                self.paras.append((n, part, level, size, bold))

    def table(self, el: Any) -> None:
        if _layout(el):  # a page laid out with a table: its cells are the page's blocks
            for td in el.iter("td", "th"):
                if td.getparent() is not None and _own_table(td) is el:
                    self.block(td)
            return
        rows: list[list[Cell]] = []
        first = next(el.iter("tr"), None)
        head = first is not None and all(
            td.tag == "th" for td in first if isinstance(td.tag, str) and td.tag in ("td", "th")
        )
        for tr in el.iter("tr"):
            cells: list[Cell] = []
            for td in tr:
                if not isinstance(td.tag, str) or td.tag not in ("td", "th"):
                    continue
                links = [
                    (" ".join(a.text_content().split()), (a.get("href") or "").strip())
                    for a in td.iter("a")
                ]
                links = [(t, u) for t, u in links if t and _SAFE_LINK.match(u)]
                cells.append((" ".join(td.text_content().split()), links))
            rows.append(cells)
        self.src.add("")
        add_table(self.src, rows, head=head)


_LAYOUT_BLOCKS = ("p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "section")


def _heading_alt(alt: str) -> bool:
    """An image's alt text that is a numbered heading (一、…, 第二部分…, 01 …)."""
    from newsletter.content.markers import read_marker
    from newsletter.content.patterns import normalise

    norm = normalise(alt)
    return len(norm) <= 30 and read_marker(norm) is not None and not norm.endswith("。")


def _chrome_alt(alt: str) -> bool:
    from newsletter.content.patterns import normalise, patterns

    return patterns().is_chrome(normalise(alt)) is not None


#: an issue's number as a page's <title> or heading gives it (第19期, No. 19)
_ISSUE_NUMBER = re.compile(r"第\s*\d{1,4}\s*期|No\.\s*\d{1,4}")
_LABELLED = re.compile(r"^\s*[\u4e00-\u9fff]{2,6}\s*[:：]")


def _apart(out: list[str], child: Any) -> None:
    """A space before an inline element that opens a field of its own (an info bar of
    ``<span>来源：…</span><span>发布时间：…</span>`` set apart only by the style sheet),
    so its fields do not run together."""
    if out and out[-1] and not out[-1][-1].isspace() and _LABELLED.match(child.text_content()):
        out.append(" ")


def _prose_left_out(main: Any, body: Any) -> bool:
    """Whether readability's pick left out a paragraph of prose (40 characters or more,
    ending a sentence): an e-mail laid out in tables lost a whole section whose items
    had short bodies under linked titles. The page is then read whole, and the chrome
    rules take its navigation and footer."""
    kept = _words_of(main)
    # Readability keeps the page's order, so each paragraph is looked for after the last
    # one found (linear over the page; searching the whole kept text for every paragraph
    # took 3 s at 16,000 paragraphs and grew with their square). Only a paragraph not
    # found there is looked for in the whole text (moved, or repeated earlier).
    at = 0
    for el in body.iter("p", "div", "td", "li"):
        if any(isinstance(c.tag, str) and c.tag in ("p", "div", "td", "table") for c in el):
            continue  # (its own paragraphs are looked at one by one)
        words = _words_of(el)
        if len(words) < 40 or words[-1] not in "。！？":
            continue
        found = kept.find(words, at)
        if found >= 0:
            at = found + len(words)
        elif words not in kept:
            return True
    return False


def _words_of(el: Any) -> str:
    return re.sub(r"\s+", "", el.text_content() or "")


def _own_table(td: Any) -> Any:
    """The table a cell belongs to (not a table nested inside it)."""
    node = td.getparent()
    while node is not None and node.tag != "table":
        node = node.getparent()
    return node


def _bare_links_shortened(root: Any) -> tuple[str, dict[str, str]]:
    """The page for readability, with each link whose words are its own address (a field
    table's ``原文链接 | https://…``) shown by a short token: readability drops a block
    whose text is mostly link text, and a long address made a whole field table look
    like navigation. Returns the page and token -> the words, put back afterwards."""
    import copy

    import lxml.html

    page = copy.deepcopy(root)
    bare: dict[str, str] = {}
    for a in page.iter("a"):
        words = a.text_content().strip()
        if len(words) > 12 and words == (a.get("href") or "").strip():
            token = f"\u27e6{len(bare)}\u27e7"
            bare[token] = words
            for child in list(a):
                a.remove(child)
            a.text = token
    return lxml.html.tostring(page, encoding="unicode"), bare


def _layout(table: Any) -> bool:
    """A table used for layout, not data: a cell holds paragraphs, headings or another
    table (a data table's cells hold words)."""
    for td in table.iter("td", "th"):
        if _own_table(td) is not table:
            continue
        if any(isinstance(c.tag, str) and c.tag in _LAYOUT_BLOCKS for c in td.iter()):
            return True
    return False


#: The size of a page's text when it does not say (a browser's and WeChat's 16px).
_BODY_PT = 12.0
_FONT_SIZE = re.compile(r"font-size:\s*([\d.]+)\s*(px|pt|em|rem)?", re.I)


def _size(el: Any, inherited: float = 0.0) -> float:
    """The largest font size (points) that text in ``el`` is set in, by inline styles: a
    size holds for the text of the element that sets it and of everything inside it
    (WeChat sets it on a span around ``<strong><span>text</span></strong>``)."""
    if not isinstance(el.tag, str):
        return 0.0
    m = _FONT_SIZE.search(el.get("style") or "")
    if m:
        unit = (m.group(2) or "px").lower()
        inherited = float(m.group(1)) * {"px": 0.75, "pt": 1.0}.get(unit, 12.0)
    best = inherited if (el.text or "").strip() else 0.0
    for child in el:
        best = max(best, _size(child, inherited))
        if (child.tail or "").strip():
            best = max(best, inherited)
    return best


def _bold_style(el: Any) -> bool:
    style = (el.get("style") or "").replace(" ", "").lower() if hasattr(el, "get") else ""
    return "font-weight:bold" in style or "font-weight:700" in style or "font-weight:600" in style


def read_html(data: bytes, *, path: str | None = None, fragment: bool = False) -> SourceText:
    """Read a web page (or a pasted fragment) into lines; one bilingual line when it cannot."""
    import lxml.html
    from lxml import etree

    parts: dict[str, tuple[str, bytes]] = {}
    head = data[:4096].lower()
    if b"mime-version:" in head and b"multipart/related" in head:
        text, parts = _mhtml(data)
    else:
        text = _decode(data)
    # control characters cannot be in an XML tree (lxml refuses them): a page never needs one
    text = _NOT_XML.sub("", text)
    if not text.strip():
        raise coded(IssueFormatError, "import.empty_page", where={"path": path})
    try:
        root = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        raise coded(IssueFormatError, "import.bad_page", where={"path": path}) from None
    title = heading = ""
    wechat = root.get_element_by_id("js_content", None)
    if wechat is not None:
        name = root.get_element_by_id("activity-name", None)
        title = " ".join(name.text_content().split()) if name is not None else ""
        main = wechat
    elif fragment:
        main = root.find("body") if root.find("body") is not None else root
    else:
        from readability import Document

        h1 = root.find(".//h1")
        title = " ".join(h1.text_content().split()) if h1 is not None else ""
        try:
            shown, bare = _bare_links_shortened(root)
            summary = Document(shown).summary(html_partial=True)
            for token, words in bare.items():
                summary = summary.replace(token, html.escape(words))
            main = lxml.html.fragment_fromstring(summary, create_parent="div")
        except (AssertionError, ValueError, etree.ParserError):
            # readability gives up on a page with no body to speak of: read it whole
            main = root.find("body") if root.find("body") is not None else root
        body = root.find("body") if root.find("body") is not None else root
        if len(_words_of(main)) < 0.3 * len(_words_of(body)) or _prose_left_out(main, body):
            # it kept a sliver of a page laid out in tables: read the page whole, and let
            # the chrome rules take the navigation and the footer
            main = body
        t = root.find(".//title")
        site = " ".join(t.text_content().split()) if t is not None and t.text_content() else ""
        if not title:
            title = site
            h2 = root.find(".//body//h2")
            named = " ".join(h2.text_content().split()) if h2 is not None else ""
            if named and len(named) <= 40:
                # <title> is the site's "site - page"; the page names itself in its first
                # <h2>: that is the title, with the number <title> carried
                title = named
        # the number the page's <title> carries, when its own heading has none (a
        # portal's 期数 line sits among the view counts and share links, dropped as chrome)
        number = _ISSUE_NUMBER.search(site)
        if number and title != site and not _ISSUE_NUMBER.search(title):
            heading, title = title, f"{title} {number.group(0)}"
    walker = _Walker(parts)
    if title:
        walker.paras.append((walker.src.add(title), title, 0, 0.0, True))
    walker.block(main)
    if title:  # the heading the title came from, again in the main content: once is enough
        names = (title, heading)
        again = [x for x in walker.paras[1:] if x[2] is not None and x[1].strip() in names]
        for n, *_ in again[:1]:
            walker.src.lines[n - 1] = ""
            walker.paras.remove(again[0])
    infer_structure(walker.src, walker.paras, _BODY_PT)
    return walker.src
