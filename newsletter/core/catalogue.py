"""One message catalogue: every message a person reads has a stable code, Chinese first.

The entries live in ``newsletter/resources/data/messages.yaml`` (``zh`` and ``en``, with
``{name}`` parameters). :func:`message` fills one in; an error raised with
:func:`coded` carries the code, so the CLI prints one line (``中文 / English``) and the API
answers ``{code, message}`` in the request's language. Traditional Chinese is made from
``zh`` where it is shown (the console and API), by the product's own conversion.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

import yaml

from newsletter.core.errors import NewsletterError
from newsletter.core.resources import resource_path

__all__ = ["Message", "catalogue", "coded", "message"]

E = TypeVar("E", bound=NewsletterError)


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    """Code → ``{"zh": …, "en": …}`` (read once per process)."""
    raw = resource_path("data", "messages.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(raw) or {}
    return {str(code): {"zh": str(v["zh"]), "en": str(v["en"])} for code, v in data.items()}


class _Lenient(string.Formatter):
    """A missing parameter shows as ``{name}`` rather than failing the message."""

    def get_value(self, key: Any, args: Any, kwargs: Any) -> Any:
        if isinstance(key, str) and key not in kwargs:
            return "{" + key + "}"
        return super().get_value(key, args, kwargs)


_FMT = _Lenient()


@dataclass(frozen=True, slots=True)
class Message:
    code: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def zh(self) -> str:
        return _FMT.format(catalogue()[self.code]["zh"], **self.params)

    @property
    def en(self) -> str:
        return _FMT.format(catalogue()[self.code]["en"], **self.params)

    def line(self) -> str:
        """The one line a CLI prints and a log keeps: ``中文 / English``."""
        return f"{self.zh} / {self.en}"

    def text(self, lang: str) -> str:
        """The message in ``zh``/``zh-Hans`` or ``en``; callers convert ``zh-Hant``."""
        return self.en if lang == "en" else self.zh


def message(code: str, **params: Any) -> Message:
    if code not in catalogue():
        raise KeyError(f"no message {code!r} in the catalogue")
    return Message(code, params)


def coded(cls: type[E], code: str, /, where: dict[str, Any] | None = None, **params: Any) -> E:
    """An error of ``cls`` whose text is the catalogue's line for ``code``; it carries
    ``.code`` and ``.msg`` (the :class:`Message`). ``where`` goes to the error's own
    constructor (``line=``, ``path=`` of an :class:`IssueFormatError`)."""
    msg = message(code, **params)
    err = cls(msg.line(), **(where or {}))
    err.code = code  # type: ignore[attr-defined]
    err.msg = msg  # type: ignore[attr-defined]
    return err
