"""One message catalogue: every message a person reads has a stable code, Chinese first.

The entries live in ``newsletter/resources/data/messages.yaml`` (``zh`` and ``en``, with
``{name}`` parameters). :func:`message` fills one in; an error raised with
:func:`coded` carries the code, so the CLI prints one line (``中文 / English``) and the API
answers ``{code, message}`` in the request's language. Traditional Chinese is made from
``zh`` where it is shown (the console and API), by the product's own conversion.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

import yaml

from newsletter.core.errors import NewsletterError
from newsletter.core.resources import resource_path

__all__ = [
    "LANGS",
    "Message",
    "catalogue",
    "coded",
    "error_prefix",
    "for_reader",
    "language_from",
    "message",
    "reader_language",
    "set_hant_converter",
]

#: What a reader of the command line may ask for: both languages (Chinese first, the
#: default when the locale says nothing useful), Simplified, Traditional or English.
LANGS = ("both", "zh-Hans", "zh-Hant", "en")
#: Where the language is looked for, first found wins (``--lang`` sets the first).
LANG_VARS = ("NEWSLETTER_LANG", "LC_ALL", "LC_MESSAGES", "LANG")
_HANT: list[Callable[[str], str]] = []

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

    def for_reader(self, lang: str) -> str:
        """The message as a reader asked for it (one of :data:`LANGS`)."""
        if lang == "en":
            return self.en
        if lang == "zh-Hans":
            return self.zh
        if lang == "zh-Hant":
            return _hant(self.zh)
        return self.line()


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


def set_hant_converter(convert: Callable[[str], str]) -> None:
    """The product's Simplified → Traditional conversion lives above ``core``; the command
    line hands it in (until then Traditional readers get Simplified)."""
    _HANT[:] = [convert]


def _hant(text: str) -> str:
    return _HANT[0](text) if _HANT else text


def language_from(value: str) -> str:
    """A locale name or ``--lang`` value (``zh_CN.UTF-8``, ``zh-TW``, ``en``, ``C``) → one of
    :data:`LANGS`. Anything that is not Chinese or English reads both."""
    v = value.strip().lower().replace("_", "-").split(".", 1)[0].split("@", 1)[0]
    if v.startswith("zh"):
        return "zh-Hant" if re.search(r"hant|tw|hk|mo", v) else "zh-Hans"
    if v.startswith("en"):
        return "en"
    return "both"


def reader_language(environ: Mapping[str, str] | None = None) -> str:
    """The language the person at the terminal reads, from the environment."""
    env = os.environ if environ is None else environ
    for key in LANG_VARS:
        if env.get(key):
            return language_from(env[key])
    return "both"


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def for_reader(text: str, lang: str) -> str:
    """A message that is not (yet) a catalogue entry, written ``中文 / English`` or
    ``English / 中文``: the reader's half, or both with Chinese first. Text that does not
    split cleanly into one Chinese and one English half is shown whole."""
    parts = text.split(" / ")
    if len(parts) != 2:
        return _hant(text) if lang == "zh-Hant" else text
    halves = _halves(*parts)
    if halves is None:
        return _hant(text) if lang == "zh-Hant" else text
    zh, en = halves
    both = f"{zh} / {en}"
    if lang == "en":
        return en if _specifics(zh) <= _specifics(en) else both
    if lang in ("zh-Hans", "zh-Hant"):
        if not _specifics(en) <= _specifics(zh):  # the Chinese half lacks the "where"
            return _hant(both) if lang == "zh-Hant" else both
        return _hant(zh) if lang == "zh-Hant" else zh
    return both


#: What says "where" in a message: numbers, quoted names, addresses, paths, identifiers.
#: Linear in the text (messages quote titles and links that anyone with upload rights
#: writes): a quote's body stops at the next opening mark as well as the closing one, and
#: an address or path starts only where a run of its characters starts, so no character
#: inside a long word is the start of another scan to its end.
_SPECIFIC = re.compile(
    r"\d+|'[^']+'|\"[^\"]+\"|“[^“”]+”|《[^《》]+》|(?<![\w.+-])[\w.+-]*[@/][\w.@/+-]+"
    r"|\b\w+[_.]\w[\w.-]*"
)


def _specifics(text: str) -> set[str]:
    return set(_SPECIFIC.findall(text))


def _halves(a: str, b: str) -> tuple[str, str] | None:
    """(Chinese, English) when one half is Chinese and the other English; the English half
    may quote Chinese data (a title, a name) that the Chinese half also carries."""
    ca, cb = set(_CJK.findall(a)), set(_CJK.findall(b))
    for zh, en, cz, ce in ((a, b, ca, cb), (b, a, cb, ca)):
        if ce <= cz and cz - ce and re.search(r"[A-Za-z]{2}", en):
            return zh, en
    return None


_PREFIX = {"both": "错误：", "zh-Hans": "错误：", "zh-Hant": "錯誤：", "en": "error: "}


def error_prefix(lang: str) -> str:
    return _PREFIX.get(lang, _PREFIX["both"])
