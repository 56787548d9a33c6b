"""A process and its descendants, read from ``/proc`` (Linux): the tools that measure a
worker tree (benchmarks) and the tests that find which worker process holds a connection
share this one reading."""

from __future__ import annotations

import os
from collections.abc import Iterator

__all__ = ["descendants", "proc_stats", "read_stats"]


def read_stats() -> Iterator[tuple[int, str, list[str]]]:
    """Every process's ``/proc/<pid>/stat``: (pid, command name, the fields after the name:
    state, ppid, …); processes that end while being read are left out."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                st = f.read()
        except OSError:
            continue
        yield int(entry), st[st.index("(") + 1 : st.rindex(")")], st[st.rindex(")") + 2 :].split()


def proc_stats() -> dict[int, list[str]]:
    """Every process's stat fields after its command name, by pid (:func:`read_stats`)."""
    return {pid: fields for pid, _comm, fields in read_stats()}


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
