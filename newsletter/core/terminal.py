"""What every command-line sub-app prints with: the consoles, ``--json``, the error line.

A leaf module: it imports no command module, so each domain's sub-app (and
``demo``) can use it without reaching back into ``newsletter.cli.main``.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["JsonOpt", "console", "emit", "err", "error_line", "fail", "print_counts"]

console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def fail(exc: Exception) -> NoReturn:
    """Print the one-line error for EXC (see :mod:`newsletter.core.failures`) and exit with its code."""
    from newsletter.core.catalogue import error_prefix, reader_language
    from newsletter.core.failures import describe

    lang = reader_language()
    code, line = describe(exc, lang)
    sys.stderr.write(
        f"{error_prefix(lang)}{line}\n"
    )  # one line, never wrapped to the terminal width
    raise typer.Exit(code)


def error_line(text: str, where: str = "") -> None:
    """One error line on stderr, never wrapped: the reader's prefix (错误：, 錯誤：, error:),
    ``where`` (a file, a channel) and ``text`` (``中文 / English``) in the reader's language,
    Chinese first when both are shown."""
    from newsletter.core.catalogue import error_prefix, for_reader, reader_language
    from newsletter.core.failures import one_line

    lang = reader_language()
    place = f"{one_line(where)}: " if where else ""
    sys.stderr.write(f"{error_prefix(lang)}{place}{for_reader(one_line(text), lang)}\n")


def emit(data: Any, as_json: bool) -> bool:
    """With ``--json``, write DATA as JSON and return True (the caller then prints nothing else)."""
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    return as_json


def print_counts(title: str, data: dict[str, Any], keys: tuple[str, ...]) -> None:
    """One row of figures under ``title``: a right-aligned column for each key of DATA."""
    t = Table(title=title)
    for k in keys:
        t.add_column(k, justify="right")
    t.add_row(*(str(data[k]) for k in keys))
    console.print(t)
