"""Every command-line failure is one clear line in the reader's language and a non-zero exit.

The language is ``--lang`` (``zh``, ``zh-Hant``, ``en``, ``both``), else the locale
(``NEWSLETTER_LANG``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``); a locale that is neither
Chinese nor English reads both, Chinese first.

:func:`run` wraps the Typer application.  Errors raised on purpose
(:class:`~newsletter.core.errors.NewsletterError`) print their message; the usual
environmental failures (database unreachable, missing or not migrated, a bad
URL, Redis or the broker down, a file that cannot be read or written, a value
too large for its column) are translated into one line that says what and
where.  Nothing else ever prints a traceback unless ``--debug`` is given.
Database URLs are shown without their password.

Exit codes: 2 bad input or configuration, 3 a service is unreachable,
4 a file could not be read or written, 1 anything unexpected.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from newsletter.core.catalogue import (
    LANG_VARS,
    error_prefix,
    for_reader,
    language_from,
    message,
    reader_language,
    set_hant_converter,
)
from newsletter.core.failures import describe, one_line

__all__ = ["describe", "run", "take_lang"]


def take_lang(args: list[str]) -> list[str]:
    """Remove ``--lang X`` / ``--lang=X`` from ARGS (anywhere, like ``--debug``) and make it
    the reader's language for this process and its children."""
    out: list[str] = []
    it = iter(args)
    for a in it:
        if a == "--lang":
            value = next(it, "")
        elif a.startswith("--lang="):
            value = a.split("=", 1)[1]
        else:
            out.append(a)
            continue
        os.environ[LANG_VARS[0]] = language_from(value)
    return out


def _hant(text: str) -> str:
    from newsletter.content.variants import convert_text

    return convert_text(text)


def _click_kinds() -> tuple[tuple[type[BaseException], ...], ...]:
    """(exit, usage error, abort) exception classes of click and of Typer: Typer 0.29 and
    later carry a click of their own (``typer._click``) and their own Exit and Abort, which
    click's classes do not catch."""
    import click

    exits: list[type[BaseException]] = [click.exceptions.Exit]
    usage: list[type[BaseException]] = [click.ClickException]
    aborts: list[type[BaseException]] = [click.exceptions.Abort]
    try:
        import typer

        exits.append(typer.Exit)
        aborts.append(typer.Abort)
        from typer._click.exceptions import ClickException as TyperClickException

        usage.append(TyperClickException)
    except (ImportError, AttributeError):  # an older Typer uses click's own classes
        pass
    return tuple(exits), tuple(usage), tuple(aborts)


def run(app: Callable[..., Any], argv: Sequence[str] | None = None) -> int:
    """Run the Typer ``app``; returns the exit code (``main`` passes it to ``sys.exit``)."""
    exits, usage, aborts = _click_kinds()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = take_lang([a for a in args if a != "--debug"])
    set_hant_converter(_hant)
    lang = reader_language()
    from newsletter.cli.helptext import localised_help

    try:
        with localised_help(lang, _hant):
            rv = app(args=args, prog_name="newsletter", standalone_mode=False)
    except exits as exc:
        return int(getattr(exc, "exit_code", None) or getattr(exc, "code", 0) or 0)
    except usage as exc:  # usage errors: one catalogue line, then where the help is
        if type(exc).__name__ == "NoArgsIsHelpError":  # (that one has shown the help already)
            return int(getattr(exc, "exit_code", 2) or 2)
        if not hasattr(exc, "ctx"):  # an error of a command's own (click.ClickException)
            line = for_reader(one_line(str(getattr(exc, "message", exc))), lang)
            sys.stderr.write(f"{error_prefix(lang)}{line}\n")
            return int(getattr(exc, "exit_code", 1) or 1)
        from newsletter.cli.usage import describe_usage, help_line

        sys.stderr.write(f"{error_prefix(lang)}{describe_usage(exc).for_reader(lang)}\n")
        sys.stderr.write(help_line(exc).for_reader(lang) + "\n")
        return int(getattr(exc, "exit_code", 2) or 2)
    except aborts:
        sys.stderr.write(message("cli.aborted").for_reader(lang) + "\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write(message("cli.interrupted").for_reader(lang) + "\n")
        return 130
    except SystemExit as exc:
        code = exc.code
        if isinstance(code, str):
            sys.stderr.write(for_reader(one_line(code), lang) + "\n")
            return 1
        return int(code or 0)
    except Exception as exc:
        if debug:
            raise
        code, line = describe(exc, lang)
        sys.stderr.write(f"{error_prefix(lang)}{line}\n")
        return code
    return int(rv) if isinstance(rv, int) else 0
