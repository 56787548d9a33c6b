"""Tables typed as plain text in a brief: rows written with bars (``| a | b |``, a Markdown
table copied as text) and rows aligned with runs of spaces. Each finder returns line
number → cells; the classifier renders those lines as one table."""

from __future__ import annotations

import re

from newsletter.content.lines import _Line

__all__ = ["pipe_rows", "spaced_rows"]


def pipe_rows(lines: list[_Line]) -> tuple[dict[int, list[str]], set[int]]:
    """Runs of two or more bar rows, and the ``| --- |`` rules inside them (part of the
    table, not dividers: their class is cleared)."""
    found: dict[int, list[str]] = {}
    table_rules: set[int] = set()
    run: list[_Line] = []
    rules: set[int] = set()

    def close() -> None:
        rows = [ln for ln in run if ln.n not in rules]
        if len(rows) >= 2:
            for ln in rows:
                found[ln.n] = [c.strip() for c in ln.raw.strip().strip("|").split("|")]
            for ln in run:
                if ln.n in rules:
                    ln.cls = ""
                    table_rules.add(ln.n)
        run.clear()

    for ln in lines:
        raw = ln.raw.strip()
        if raw.startswith("|") and raw.endswith("|") and raw.count("|") >= 3:
            if re.fullmatch(r"[|:\-\s]+", raw):
                rules.add(ln.n)
            elif ln.cls:
                close()
                continue
            run.append(ln)
            continue
        close()
    close()
    return found, table_rules


def spaced_rows(
    lines: list[_Line], taken: dict[int, list[str]], table_rules: set[int]
) -> dict[int, list[str]]:
    """Three or more consecutive lines that split at runs of two or more spaces into the
    same number (two or more) of cells; lines in ``taken`` or ``table_rules`` are not."""
    found: dict[int, list[str]] = {}
    run: list[tuple[_Line, list[str]]] = []

    def close() -> None:
        if len(run) >= 3:
            found.update({ln.n: cells for ln, cells in run})
        run.clear()

    for ln in lines:
        if ln.cls or ln.heading is not None or "\t" in ln.raw or ln.n in taken:
            close()
            continue
        if ln.n in table_rules:
            close()
            continue
        cells = [c for c in re.split(r"(?: {2,}|\u3000+)", ln.raw.strip()) if c]
        if len(cells) < 2 or (run and len(cells) != len(run[0][1])):
            close()
            if len(cells) < 2:
                continue
        run.append((ln, cells))
    close()
    return found
