"""A usage error (an unknown command or option, a missing argument, a bad value) as one
catalogue line, in the reader's language with Chinese first, instead of click's English
``Error:`` block. The line is built from the exception's own fields (the option's name,
the parameter, the values given), not by rewording click's text; only the two errors
click raises as a plain :class:`~click.UsageError` are told apart by their message."""

from __future__ import annotations

import re
from typing import Any

from newsletter.core.catalogue import Message, message
from newsletter.core.failures import one_line

__all__ = ["describe_usage"]

_NO_COMMAND = re.compile(r"No such command '(?P<name>.+?)'\.(?: Did you mean '(?P<hint>.+?)'\?)?")
_EXTRA = re.compile(r"Got unexpected extra argument(?:s|\(s\))? \((?P<args>.*)\)")
#: what a value of each of click's parameter types must be, for the Chinese half
_EXPECT = {
    "integer": "整数",
    "integer range": "范围内的整数",
    "float": "数字",
    "float range": "范围内的数字",
    "boolean": "true 或 false",
    "datetime": "日期时间",
    "uuid": "UUID",
    "path": "路径",
    "file": "文件",
}


_PY_EXPECT = {int: "整数", float: "数字", bool: "true 或 false"}


def _annotation(param: Any) -> Any:
    """The Python type a Typer parameter was declared with (``int | None`` → int)."""
    import typing

    ann = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    return args[0] if len(args) == 1 else ann


def _expect(exc: Any) -> str:
    """（要写整数）: what the parameter takes, read from its declared type."""
    import datetime as dt
    import enum
    from pathlib import PurePath

    param = getattr(exc, "param", None)
    ptype = getattr(param, "type", None)  # click's own parameter types
    choices = getattr(ptype, "choices", None)
    ann = _annotation(param)
    if not choices and isinstance(ann, type) and issubclass(ann, enum.Enum):
        choices = [m.value for m in ann]
    if choices:
        return "（可选：" + "、".join(str(c) for c in choices) + "）"
    name = str(getattr(ptype, "name", "") or "")
    if name in _EXPECT:
        return f"（要写{_EXPECT[name]}）"
    if isinstance(ann, type):
        if ann in _PY_EXPECT:
            return f"（要写{_PY_EXPECT[ann]}）"
        if issubclass(ann, dt.datetime | dt.date):
            return "（要写日期，如 2026-12-14）"
        if issubclass(ann, PurePath):
            return "（要写路径）"
    return ""


def _hint(names: list[str]) -> dict[str, str]:
    if not names:
        return {"hint_zh": "", "hint_en": ""}
    shown = ", ".join(names[:3])
    return {"hint_zh": f"（是否要写 {shown}？）", "hint_en": f" (did you mean {shown}?)"}


def _param_name(exc: Any) -> str:
    param = getattr(exc, "param", None)
    hint = getattr(exc, "param_hint", None)
    if isinstance(hint, str) and hint:
        return hint
    if param is not None:
        opts = getattr(param, "opts", None) or []
        if getattr(param, "param_type_name", "") == "argument":
            return str(getattr(param, "human_readable_name", None) or param.name)
        return "/".join(opts) or str(param.name)
    return "?"


def _echo(value: object) -> str:
    """What the person typed, shown back: one line, escaped, at most 80 characters."""
    shown = one_line(str(value))
    return shown if len(shown) <= 80 else shown[:79] + "…"


def describe_usage(exc: BaseException) -> Message:
    """The catalogue line for click's (or Typer's own click's) usage error ``exc``; what
    the person typed is echoed escaped and shortened (:func:`_echo`)."""
    kind = type(exc).__name__
    text = str(getattr(exc, "message", "") or exc).strip()
    if kind == "NoSuchOption":
        possible = sorted(getattr(exc, "possibilities", None) or [])
        name = _echo(exc.option_name)  # type: ignore[attr-defined]
        return message("cli.usage.no_option", name=name, **_hint(possible))
    if kind == "MissingParameter":
        param = getattr(exc, "param", None)
        is_arg = getattr(param, "param_type_name", "") == "argument"
        return message(
            "cli.usage.missing",
            name=_param_name(exc),
            kind_zh="参数" if is_arg else "选项",
            kind_en="argument" if is_arg else "option",
        )
    if kind == "BadParameter":
        return message(
            "cli.usage.bad_value",
            name=_param_name(exc),
            expect_zh=_expect(exc),
            detail_en=_echo(text),
        )
    if kind == "BadOptionUsage" and text.endswith("requires an argument."):
        return message("cli.usage.needs_value", name=_echo(exc.option_name))  # type: ignore[attr-defined]
    m = _NO_COMMAND.fullmatch(text)
    if m is not None:
        hint = [m.group("hint")] if m.group("hint") else []
        return message("cli.usage.no_command", name=_echo(m.group("name")), **_hint(hint))
    m = _EXTRA.fullmatch(text)
    if m is not None:
        return message("cli.usage.extra", args=_echo(m.group("args")))
    return message("cli.usage.other", detail=_echo(text))


def help_line(exc: BaseException) -> Message:
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or "newsletter"
    return message("cli.usage.help", command=command)
