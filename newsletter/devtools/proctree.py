"""A process and its descendants, read from ``/proc`` (Linux): the tools that measure a
worker tree (benchmarks) and the tests that find which worker process holds a connection
share this one reading."""

from __future__ import annotations

import os

__all__ = ["descendants", "proc_stats"]


def proc_stats() -> dict[int, list[str]]:
    """Every process's ``/proc/<pid>/stat`` fields after the command name (field 3 on:
    state, ppid, …); processes that end while being read are left out."""
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                st = f.read()
        except OSError:
            continue
        stats[int(entry)] = st[st.rindex(")") + 2 :].split()
    return stats


def descendants(pid: int, stats: dict[int, list[str]] | None = None) -> list[int]:
    """``pid`` and every process below it (``pid`` first)."""
    stats = proc_stats() if stats is None else stats
    children: dict[int, list[int]] = {}
    for p, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out
