"""A brief written in Markdown, read through its own markup rather than as plain text.

Whether a text is Markdown is read from the text: headings (``## …``), lines that are
only bold (``**…**``), table rules (``|---|``) and quotes (``> …``) — at least one in a
file named ``.md``, at least three otherwise (there a ``>`` quote does not count: it is a
mail's). Such a brief is rendered to HTML (CommonMark with tables and footnotes; HTML
written into it is kept) and read like a web page (``htmlimport``, which takes words,
links and pictures and never a script, a style or a frame), so its heading levels, bold
titles, tables and quotes are the structure the importer reads, and no ``#`` or ``*`` is
left in the text.

A file already in the product's own issue format (YAML front matter with a title, then
the issue) comes back as it is.
"""

from __future__ import annotations

import functools
import re

import yaml

__all__ = ["is_issue_markdown", "looks_like_markdown", "markdown_page"]

_MARKUP = re.compile(
    r"^(?:#{1,6}[ \t]+\S|\*\*[^*\n]+\*\*[ \t]*$|__[^_\n]+__[ \t]*$|\|?[ \t]*:?-{3,}:?[ \t]*\||>[ \t]?\S)",
    re.M,
)
_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n", re.S)


def looks_like_markdown(text: str, name: str = "") -> bool:
    """Whether ``text`` is Markdown: one line of markup in a file named so, three in any
    other. There, ``>`` at the start of a line is a mail's quoting (a forwarded brief),
    not evidence of Markdown."""
    marks = _MARKUP.findall(text[:200_000])
    if name.lower().endswith((".md", ".markdown")):
        return len(marks) >= 1
    return sum(1 for m in marks if not m.startswith(">")) >= 3


@functools.lru_cache(maxsize=2)
def is_issue_markdown(text: str) -> bool:
    """Front matter with a title, and an issue that parses: the product's own format.
    (Asked by ``documents.read_document`` and again by the import: parsed once.)"""
    m = _FRONT.match(text.lstrip("\ufeff"))
    if m is None:
        return False
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return False
    if not isinstance(data, dict) or not data.get("title"):
        return False
    from newsletter.content.parser import parse_issue

    try:
        return bool(parse_issue(text).sections)
    except Exception:  # not the product's format after all: read it as a brief
        return False


def markdown_page(text: str) -> bytes:
    """The Markdown rendered as an HTML fragment."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.footnote import footnote_plugin

    # HTML written into the Markdown (<details>, <br>, <a href>) is read like a page's: the
    # HTML reader takes text, links and pictures from it and nothing else
    md = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table")
    md.use(footnote_plugin)
    md.add_render_rule("footnote_anchor", lambda *args, **kwargs: "")  # (no ↩ in the text)
    return ("<div>" + md.render(text) + "</div>").encode("utf-8")
