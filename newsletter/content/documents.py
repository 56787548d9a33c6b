"""Any brief file → lines to import: a Word file, a web page, or text in any encoding.

The kind is read from the bytes (a ZIP with a Word document, HTML markup),
with the file name as a tie-breaker, never from the name alone.
"""

from __future__ import annotations

from newsletter.content.decode import decode_source
from newsletter.content.htmlimport import is_html, read_html
from newsletter.content.source import SourceText
from newsletter.content.wordimport import is_docx, read_docx
from newsletter.core.catalogue import coded
from newsletter.core.errors import IssueFormatError

__all__ = ["read_document"]


def read_document(data: bytes, *, name: str = "") -> tuple[str, SourceText | None, list[str]]:
    """``(text, source or None for plain text, warnings)``."""
    if is_docx(data):
        src = read_docx(data, path=name or None)
        return src.text, src, list(src.notes)
    if data.startswith(b"PK") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise coded(IssueFormatError, "import.old_word", where={"path": name or None})
    if is_html(data, name):
        # rich text pasted in the console is a fragment: take it whole, no main-content pick
        src = read_html(data, path=name or None, fragment=name.startswith("pasted"))
        return src.text, src, list(src.notes)
    text, warnings = decode_source(data, path=name or None)
    return text, None, warnings
