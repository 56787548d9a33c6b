"""The command line: help everywhere, clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from newsletter.cli.main import app

runner = CliRunner()


def _paths(cmd, prefix=()):  # type: ignore[no-untyped-def]
    yield prefix
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _paths(sub, (*prefix, name))


def test_every_command_has_help() -> None:
    paths = list(_paths(get_command(app)))
    for required in (
        ("demo",),
        ("db", "upgrade"),
        ("issue", "render"),
        ("subscribers", "import"),
        ("send", "start"),
        ("stats",),
        ("web",),
        ("worker",),
        ("beat",),
    ):
        assert required in paths
    for p in paths:
        r = runner.invoke(app, [*p, "--help"])
        assert r.exit_code == 0, (p, r.output)
        assert "Usage" in r.output


def test_malformed_issue_file_names_file_and_line(sqlite_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.md"
    bad.write_text("---\ntitle: [unclosed\nnumber: 1\n---\n\n## 一、栏目\n", encoding="utf-8")
    r = runner.invoke(app, ["issue", "add", str(bad)])
    assert r.exit_code == 2
    assert "bad.md:" in r.output and r.output.startswith("错误：")


def test_csv_with_bad_rows_reports_them(sqlite_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "s.csv"
    f.write_text("email,name\ngood@example.com,甲\nbroken,乙\n", encoding="utf-8")
    report = tmp_path / "r.csv"
    r = runner.invoke(
        app, ["subscribers", "import", str(f), "--list", "周报", "--report", str(report), "--json"]
    )
    assert r.exit_code == 0, r.output
    assert '"invalid": 1' in r.output and '"new": 1' in r.output
    assert "broken" in report.read_text(encoding="utf-8-sig")


def test_unknown_send_is_a_clear_error(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    r = runner.invoke(app, ["send", "pause", "999"])
    assert r.exit_code == 2 and "send 999 does not exist" in r.output


@pytest.mark.parametrize("cmd", [["db", "upgrade"], ["lists", "list", "--json"]])
def test_db_commands_run(sqlite_settings, cmd) -> None:  # type: ignore[no-untyped-def]
    r = runner.invoke(app, cmd)
    assert r.exit_code == 0, r.output


def test_send_status_watch_shows_progress_of_a_finished_send(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    from newsletter.delivery.run import drive_inline
    from tests.factories import seed

    ids = seed(4)
    assert drive_inline(ids["send"]) == "finished"
    r = runner.invoke(app, ["send", "status", str(ids["send"]), "--watch"])
    assert r.exit_code == 0, r.output
    assert "4/4" in r.output and "finished" in r.output
    r = runner.invoke(app, ["send", "list", "--json"])
    assert '"sent": 4' in r.output


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["nosuch"], 2, ("没有命令 nosuch", "no such command nosuch")),
        (["worker", "--no-such-option"], 2, ("没有选项 --no-such-option", "no such option")),
        (["send", "pause"], 2, ("缺少参数", "missing argument")),
        (["issue", "import", "x.txt", "--number", "abc"], 2, ("--number 的值无效（要写整数）", "invalid value for --number")),
        (["issue", "import", "x.txt", "y", "z"], 2, ("多余的参数：y z", "unexpected extra arguments")),
    ],
)  # fmt: skip
def test_the_real_entry_point_reports_usage_errors_as_usage(  # type: ignore[no-untyped-def]
    argv, code, says, capsys, monkeypatch
) -> None:
    """Through `newsletter` itself (not the test runner): a usage error is one catalogue
    line, Chinese first, then where the help is; exit 2, never "unexpected" (Typer 0.29
    brought its own click and exit classes)."""
    from newsletter.cli.errors import run

    for var in ("NEWSLETTER_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    assert run(app, argv) == code
    err = capsys.readouterr().err
    first, help_line = err.splitlines()
    zh, en = says
    assert first.startswith("错误：") and first.index(zh) < first.index(en), err
    assert help_line.startswith("用法见 newsletter") and help_line.endswith("--help")
    assert "Error:" not in err and "unexpected error" not in err and "Traceback" not in err, err
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert run(app, argv) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and en in err and zh not in err, err


def test_the_real_entry_point_keeps_a_commands_exit_code(
    sqlite_settings, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """A command that ends with typer.Exit(2) exits 2 through `newsletter` too."""
    from newsletter.cli.errors import run

    bad = tmp_path / "bad.md"
    bad.write_text("---\ntitle: [unclosed\nnumber: 1\n---\n\n## 一、栏目\n", encoding="utf-8")
    assert run(app, ["issue", "add", str(bad)]) == 2
    out = capsys.readouterr()
    assert "unexpected" not in out.out + out.err
    assert run(app, ["send"]) == 2  # no arguments: the help, and the usage exit code


def test_what_a_person_typed_is_echoed_as_text_not_as_terminal_control(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An option, a command or a file name with control characters (an escape sequence
    that would retitle the window or clear the screen, a newline that would forge a
    second line) comes back escaped, on one line."""
    from newsletter.cli.errors import run

    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    for argv in (["issue", "--x\ny\x1b]0;pwn\x07"], ["bo\x1b[2Jgus"],
                 ["issue", "import", "a\x1b[31mb\n.txt"]):  # fmt: skip
        assert run(app, argv) != 0
        err = capsys.readouterr().err
        assert "\x1b" not in err and "\x07" not in err, err
        assert err.startswith("错误：") and err.splitlines()[0].count("\\x1b") >= 1, err
        assert len(err.splitlines()) <= 2  # the line, and where the help is
