"""CSV cells that a spreadsheet will not run: the OWASP rule, in one place.

Excel, LibreOffice and Google Sheets treat a cell that begins with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return as a formula (``=HYPERLINK(…)``,
``+cmd|' /C calc'!A0``, ``@SUM(…)``).  Every CSV we write goes through
:func:`writer`, which prefixes such a text cell with a single quote, so the
spreadsheet shows it as text.  Numbers (``int``/``float``) are written as they
are: a negative count is not an attack.

On the way in, :func:`keep_neutralised` makes sure an imported cell that was
protected (``'=…`` or a leading tab/CR before a formula character) stays
protected instead of being re-armed by whitespace stripping.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

__all__ = ["FORMULA_PREFIXES", "keep_neutralised", "neutralise", "writer"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """``value`` with a leading ``'`` if a spreadsheet would read it as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def keep_neutralised(raw: str, cleaned: str) -> str:
    """The imported ``cleaned`` cell, still protected if ``raw`` was.

    ``raw`` is the cell as read; ``cleaned`` is what is left after stripping
    whitespace and controls.  If stripping exposed a formula character that
    the raw cell hid behind a tab, CR or space, the protection comes back as
    a leading quote.
    """
    if cleaned.startswith(("=", "+", "-", "@")) and not raw.startswith(("=", "+", "-", "@")):
        return "'" + cleaned
    return cleaned


class _SafeWriter:
    def __init__(self, fh: IO[str], **kw: Any) -> None:
        self._w = csv.writer(fh, **kw)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._w.writerow([neutralise(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(fh: IO[str], **kw: Any) -> _SafeWriter:
    """``csv.writer`` whose text cells never start a formula."""
    return _SafeWriter(fh, **kw)
