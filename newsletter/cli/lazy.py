"""Sub-command groups loaded only when used, so that ``newsletter --help`` starts fast.

Some groups live in modules that are slow to import (FastAPI, SQLAlchemy
models, cryptography).  :class:`LazyGroup` lists them by name and one-line
help, and imports the module the moment the group is invoked or its commands
are listed.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import typer
import typer._click as click  # the Click that Typer is built on (vendored)
from typer.core import TyperCommand, TyperGroup

__all__ = ["LazyGroup"]


class _LazyCommand(TyperCommand):
    """Stands in for a sub-command group until it is invoked (or its commands are listed)."""

    def __init__(self, name: str, module: str, attr: str, help_text: str) -> None:
        super().__init__(name, help=help_text, short_help=help_text)
        self._target = (module, attr)
        self._loaded: click.Command | None = None

    def load(self) -> click.Command:
        if self._loaded is None:
            module, attr = self._target
            sub = getattr(importlib.import_module(module), attr)
            loaded = typer.main.get_group(sub)  # a sub-group: no completion options
            loaded.name = self.name
            self._loaded = loaded
        return self._loaded

    @property
    def commands(self) -> dict[str, click.Command]:
        return getattr(self.load(), "commands", {})

    def make_context(  # type: ignore[override]
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self.load().make_context(info_name, args, parent, **extra)


class LazyGroup(TyperGroup):
    """A group whose ``lazy`` entries (name -> (module, attribute, help)) load on first use."""

    lazy: ClassVar[dict[str, tuple[str, str, str]]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            return _LazyCommand(cmd_name, *self.lazy[cmd_name])
        return super().get_command(ctx, cmd_name)
