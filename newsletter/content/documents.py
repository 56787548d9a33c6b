"""Any brief file → lines to import: a Word file, a web page, Markdown, or text in any
encoding.

The kind is read from the bytes (a ZIP with a Word document, HTML markup),
with the file name as a tie-breaker, never from the name alone.  A file that
is not a brief (a PDF, an image, a workbook, a program) or a ZIP over the
unpacking limits is refused first, with one catalogue line (``sniff.py``).
"""

from __future__ import annotations

from newsletter.content.decode import decode_source
from newsletter.content.htmlimport import is_html, read_html
from newsletter.content.mdimport import is_issue_markdown, looks_like_markdown, markdown_page
from newsletter.content.sniff import check_not_brief, check_word_zip
from newsletter.content.source import SourceText
from newsletter.content.wordimport import read_docx

__all__ = ["read_document"]


def read_document(data: bytes, *, name: str = "") -> tuple[str, SourceText | None, list[str]]:
    """``(text, source or None for plain text, warnings)``; refusals raise
    :class:`~newsletter.core.errors.IssueFormatError` with one line."""
    if data.startswith(b"PK"):
        check_word_zip(data, name)
        src = read_docx(data, path=name or None)
        return src.text, src, list(src.notes)
    check_not_brief(data, name)
    if is_html(data, name):
        # rich text pasted in the console is a fragment: take it whole, no main-content pick
        src = read_html(data, path=name or None, fragment=name.startswith("pasted"))
        return src.text, src, list(src.notes)
    text, warnings = decode_source(data, path=name or None)
    if looks_like_markdown(text, name) and not is_issue_markdown(text):
        src = read_html(markdown_page(text), path=name or None, fragment=True)
        return src.text, src, [*warnings, *src.notes]
    return text, None, warnings
