"""The command line's ``--help`` in the reader's language.

The commands are written with English help (their docstrings and ``help=``); their
Chinese lives in ``resources/data/cli_help.yaml`` (command path → ``help``, ``short``, and
``params``: parameter name → help). :func:`install` wraps Typer's help formatter so that,
just before a help page is drawn, the command, its parameters and the commands it lists
take the reader's text: Chinese for a Chinese reader (Traditional by conversion), Chinese
then English for a reader whose locale says neither, English for an English reader.
Only ``--help`` pages change; what a command does and prints is untouched. Everything
:func:`localised_help` changes (the formatter, its titles, the commands' texts) is put back
when it ends, so a process that runs the command line twice, or a test, sees no leftover.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["localise", "localised_help"]

#: (object, attribute, value before) of every change, for putting them back
_Undo = list[tuple[Any, str, Any]]


def _set(undo: _Undo, obj: Any, attr: str, value: Any) -> None:
    undo.append(
        (
            obj,
            attr,
            obj.__dict__.get(attr, _ABSENT) if hasattr(obj, "__dict__") else getattr(obj, attr),
        )
    )
    setattr(obj, attr, value)


_ABSENT = object()

#: The formatter's own words: the panels' titles, the usage line, the help option.
_OWN = {
    "Arguments": "参数",
    "Options": "选项",
    "Commands": "命令",
    "Show this message and exit.": "显示本帮助并退出。",
    "[required]": "[必填]",
    "[default: {}]": "[默认：{}]",
    "[env var: {}]": "[环境变量：{}]",
    "(deprecated) ": "（已弃用）",
}
#: the formatter's module constants that hold those words
_CONSTANTS = {
    "ARGUMENTS_PANEL_TITLE": "Arguments",
    "OPTIONS_PANEL_TITLE": "Options",
    "COMMANDS_PANEL_TITLE": "Commands",
    "REQUIRED_LONG_STRING": "[required]",
    "DEFAULT_STRING": "[default: {}]",
    "ENVVAR_STRING": "[env var: {}]",
    "DEPRECATED_STRING": "(deprecated) ",
}


@functools.cache
def _table() -> dict[str, Any]:
    import yaml

    from newsletter.core.resources import resource_path

    with open(resource_path("data", "cli_help.yaml"), encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return data if isinstance(data, dict) else {}


def _pick(zh: str | None, en: str | None, lang: str, convert: Callable[[str], str]) -> str | None:
    """One text in the reader's language; ``en`` when there is no Chinese."""
    if not zh or lang == "en":
        return en
    zh = convert(zh) if lang == "zh-Hant" else zh
    if lang in ("zh-Hans", "zh-Hant") or not en:
        return zh
    return f"{zh}\n\n{en}"


def _short(zh: str | None, en: str | None, lang: str, convert: Callable[[str], str]) -> str | None:
    """A command's line in a list: one language (Chinese unless the reader reads English)."""
    if not zh or lang == "en":
        return en
    return convert(zh) if lang == "zh-Hant" else zh


def localise(cmd: Any, path: str, lang: str, convert: Callable[[str], str], undo: _Undo) -> Any:
    """Give ``cmd`` (at command path ``path``) the reader's help text (its parameters:
    :func:`_localise_params`). Done once per object; returns ``cmd``."""
    if cmd is None or lang == "en" or getattr(cmd, "_nl_help", None) == lang:
        return cmd
    entry = _table().get(path) or {}
    zh_help = entry.get("help")
    zh_short = entry.get("short") or (zh_help.split("\n\n", 1)[0] if zh_help else None)
    en_help = getattr(cmd, "help", None)
    _set(undo, cmd, "short_help",
         _short(zh_short, getattr(cmd, "short_help", None) or en_help, lang, convert))  # fmt: skip
    _set(undo, cmd, "help", _pick(zh_help, en_help, lang, convert))
    _set(undo, cmd, "_nl_help", lang)
    return cmd


def _localise_params(
    params: list[Any], path: str, lang: str, convert: Callable[[str], str], undo: _Undo
) -> None:
    """The parameters' help of the command at ``path`` (the help option among them, which
    is made anew for each context, so it is given here and not in :func:`localise`)."""
    table = (_table().get(path) or {}).get("params") or {}
    for p in params:
        en = getattr(p, "help", None)
        zh = table.get(p.name) or _OWN.get(en or "")
        if zh and en:
            _set(undo, p, "help", _pick(zh, en, lang, convert).replace("\n\n", " / "))  # type: ignore[union-attr]


@contextlib.contextmanager
def localised_help(lang: str, convert: Callable[[str], str]) -> Iterator[None]:
    """While it lasts, every ``--help`` page is drawn in ``lang`` (see the module docstring)."""
    if lang == "en":
        yield
        return
    from typer import rich_utils

    undo: _Undo = []
    for attr, en in _CONSTANTS.items():
        if getattr(rich_utils, attr, None) == en:  # (a Typer that words them otherwise: kept)
            zh = convert(_OWN[en]) if lang == "zh-Hant" else _OWN[en]
            titled = attr.endswith("_TITLE") and lang == "both"
            _set(undo, rich_utils, attr, f"{zh} {en}" if titled else zh)
    draw = rich_utils.rich_format_help

    def localised(*, obj: Any, ctx: Any, markup_mode: Any) -> Any:
        path = " ".join(str(ctx.command_path).split()[1:])
        localise(obj, path, lang, convert, undo)
        _localise_params(obj.get_params(ctx), path, lang, convert, undo)
        get = getattr(obj, "get_command", None)
        if get is not None and "get_command" not in getattr(obj, "__dict__", {}):

            def get_command(c: Any, name: str) -> Any:
                return localise(get(c, name), f"{path} {name}".strip(), lang, convert, undo)

            _set(undo, obj, "get_command", get_command)
        return draw(obj=obj, ctx=ctx, markup_mode=markup_mode)

    _set(undo, rich_utils, "rich_format_help", localised)
    try:
        yield
    finally:
        for obj, attr, old in reversed(undo):
            if old is _ABSENT:
                with contextlib.suppress(AttributeError):
                    delattr(obj, attr)
            else:
                setattr(obj, attr, old)
