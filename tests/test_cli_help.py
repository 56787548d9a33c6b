"""Every ``--help`` of the command line matches the committed snapshot (order aside).

The snapshot (``tests/snapshots/cli_help.json``) maps each command path to its
help text.  Moving a command to another module must not change what an operator
reads; only the order of lines (commands listed in another order) may differ.
After a deliberate change to a command's help, refresh the snapshot with
``python tests/test_cli_help.py --update``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).parent / "snapshots" / "cli_help.json"
WIDTH = "100"


def _paths(cmd: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _paths(sub, (*prefix, name))


def collect() -> dict[str, str]:
    from typer.main import get_command
    from typer.testing import CliRunner

    from newsletter.cli.main import app

    runner = CliRunner()
    out: dict[str, str] = {}
    for path in _paths(get_command(app)):
        r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": WIDTH, "NO_COLOR": "1"})
        assert r.exit_code == 0, (path, r.output)
        out[" ".join(path)] = r.output
    return out


def _lines(text: str) -> list[str]:
    return sorted(line.rstrip() for line in text.splitlines())


def test_help_unchanged_apart_from_order() -> None:
    want = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    got = collect()
    assert sorted(got) == sorted(want), "commands added or removed"
    changed = [p for p in want if _lines(got[p]) != _lines(want[p])]
    assert not changed, "help changed for: " + ", ".join(repr(p) for p in changed)


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_cli_help.py --update")
    SNAPSHOT.write_text(
        json.dumps(collect(), ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
