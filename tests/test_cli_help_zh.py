"""``--help`` in the reader's language (``newsletter/cli/helptext.py``): every command and
every parameter with help has its Chinese in ``resources/data/cli_help.yaml``, and a help
page drawn through the real entry point is Chinese for a Chinese reader, Traditional for a
Taiwan or Hong Kong locale, both for a locale that says neither, English for English."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from newsletter.cli.helptext import _table

_CJK = re.compile(r"[\u4e00-\u9fff]")


def _tree() -> Iterator[tuple[str, Any]]:
    import typer._click as click
    from typer.main import get_command

    from newsletter.cli.main import app

    def walk(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        yield " ".join(path), cmd
        if not hasattr(cmd, "list_commands"):
            return
        ctx = click.Context(cmd)
        for name in sorted(cmd.list_commands(ctx)):
            sub = cmd.get_command(ctx, name)
            sub = sub.load() if hasattr(sub, "load") else sub  # a group loaded when used
            yield from walk(sub, (*path, name))

    yield from walk(get_command(app), ())


def test_every_command_and_parameter_has_its_chinese() -> None:
    table = _table()
    missing: list[str] = []
    for path, cmd in _tree():
        entry = table.get(path) or {}
        if (cmd.help or "").strip() and not _CJK.search(str(entry.get("help", ""))):
            missing.append(path or "(root)")
        for p in cmd.params:
            if getattr(p, "help", None) and not _CJK.search(
                str((entry.get("params") or {}).get(p.name, ""))
            ):
                missing.append(f"{path} {p.name}")
    assert missing == [], missing
    known = {path for path, _ in _tree()}
    assert set(table) <= known, sorted(set(table) - known)  # no entry for a gone command


def _help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], lang: str,
          *argv: str) -> str:  # fmt: skip
    from newsletter.cli.errors import run
    from newsletter.cli.main import app

    for var in ("NEWSLETTER_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", lang)
    monkeypatch.setenv("COLUMNS", "200")
    assert run(app, [*argv, "--help"]) == 0
    return capsys.readouterr().out


def test_a_help_page_is_drawn_in_the_readers_language(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    entry = _table()["issue import"]
    zh_help = entry["help"].split("\n\n")[0].strip()
    zh_out = entry["params"]["out"]
    page = _help(monkeypatch, capsys, "zh_CN.UTF-8", "issue", "import")
    assert zh_help[:12] in page and zh_out[:8] in page and "选项" in page
    assert "Markdown file to write" not in page and "Show this message" not in page
    en = _help(monkeypatch, capsys, "en_US.UTF-8", "issue", "import")
    assert "Markdown file to write" in en and not _CJK.search(en)
    both = _help(monkeypatch, capsys, "C.UTF-8", "issue", "import")
    assert both.index(zh_out[:8]) < both.index("Markdown file to write")
    listing = _help(monkeypatch, capsys, "zh_TW.UTF-8", "issue")
    assert "選項" in listing and "命令" in listing


def test_nothing_is_left_changed_after_a_help_page(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """The English help of the same process (the snapshot test's) is untouched after a
    Chinese page was drawn."""
    from typer import rich_utils
    from typer.testing import CliRunner

    from newsletter.cli.main import app

    draw, title = rich_utils.rich_format_help, rich_utils.OPTIONS_PANEL_TITLE
    _help(monkeypatch, capsys, "zh_CN.UTF-8", "issue", "import")
    assert (rich_utils.rich_format_help, rich_utils.OPTIONS_PANEL_TITLE) == (draw, title)
    out = CliRunner().invoke(app, ["issue", "import", "--help"], env={"COLUMNS": "200"}).output
    assert "Markdown file to write" in out and not _CJK.search(out.split("Usage")[1])
