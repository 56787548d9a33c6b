"""A row of block characters for a series of counts (the CLI's hourly opens, the trend).

Pure: no database, no web, so that the command-line output helpers can draw
one without importing the statistics queries.
"""

from __future__ import annotations

__all__ = ["sparkline"]


def sparkline(values: list[int]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    if not values:
        return ""
    top = max(values) or 1
    return "".join(bars[min(len(bars) - 1, v * (len(bars) - 1) // top)] for v in values)
