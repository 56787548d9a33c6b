"""The page's bottom: what follows an end marker, a mail's signature or a
related-articles heading is the page's, not the brief's (read before the outline)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from newsletter.content.lines import _Line
from newsletter.content.patterns import Patterns

__all__ = ["mark_bottom"]


def mark_bottom(
    lines: list[_Line],
    p: Patterns,
    hints: Mapping[int, str],
    weak: set[int],
    is_field: Callable[[str], bool],
) -> None:
    """The page's bottom: every line after an end marker (— END —) or a mail's
    signature line, and the short lines after a related-articles heading (往期推荐) up
    to the next long one."""
    start = len(lines) // 3
    for k in range(start, len(lines)):
        ln = lines[k]
        kind = p.is_chrome(ln.norm) if ln.cls == "chrome" else None
        if ln.raw.rstrip("\r\n") in ("--", "-- ") and hints.get(ln.n) is None:
            after = [x for x in lines[k + 1 :] if x.cls != "blank" and x.text]
            # a signature: a few lines to the end, not a separator before more items
            if len(after) <= 8 and not any(is_field(x.norm) for x in after):
                ln.cls, kind = "chrome", "end"  # (RFC 3676 4.3)
        if kind not in ("end", "related"):
            continue
        for later in lines[k + 1 :]:
            if later.cls or (hints.get(later.n) is not None and later.n not in weak):
                continue
            if kind != "end" and len(later.norm) > p.heading_max:
                break
            later.cls = "chrome"
        return
