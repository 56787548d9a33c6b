"""Chinese script detection and conversion (OpenCC plus an editable fix table).

* :func:`detect_script` tells a Traditional source from a Simplified one by
  counting the characters each OpenCC direction would change.
* :func:`to_hans` is OpenCC ``t2s`` followed by the ``hans`` fixes of
  ``newsletter/resources/data/script-overrides.yaml`` (a bad converter's 鍊 becomes 链,
  never 炼).  Its output is a fixed point of ``t2s``.
* :func:`to_hant` goes through Simplified first (so a Traditional source's own
  artifacts such as 關系 or 産 are repaired), then OpenCC ``s2t`` (default:
  character conversion that keeps mainland vocabulary), ``s2hk`` or ``s2tw``,
  then the ``hant`` fixes.
* OpenCC is imported on first use and each converter is built once per process.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

__all__ = ["HANT_TABLES", "detect_script", "load_overrides", "to_hans", "to_hant"]

#: OpenCC configurations a publication may choose for its zh-Hant edition.
HANT_TABLES = ("s2t", "s2hk", "s2tw")


@lru_cache(maxsize=8)
def _converter(config: str) -> Any:
    import opencc  # imported lazily: the command line starts without it

    return opencc.OpenCC(config)


@lru_cache(maxsize=1)
def load_overrides() -> dict[str, dict[str, str]]:
    """The fix tables, ``{"hans": {...}, "hant": {...}}``."""
    raw = (
        resources.files("newsletter.resources")
        .joinpath("data/script-overrides.yaml")
        .read_text("utf-8")
    )
    data = yaml.safe_load(raw) or {}
    return {k: {str(a): str(b) for a, b in (data.get(k) or {}).items()} for k in ("hans", "hant")}


@lru_cache(maxsize=2)
def _fix_re(kind: str) -> tuple[re.Pattern[str] | None, dict[str, str]]:
    table = load_overrides()[kind]
    if not table:
        return None, table
    keys = sorted(table, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, keys))), table


def _fix(text: str, kind: str) -> str:
    pattern, table = _fix_re(kind)
    return pattern.sub(lambda m: table[m.group(0)], text) if pattern else text


@lru_cache(maxsize=16384)
def to_hans(text: str) -> str:
    """Simplified text, whatever the source script (idempotent).

    Cached: rendering both variants converts each string to Simplified twice
    (once for zh-Hans, once on the way to zh-Hant).
    """
    if not text:
        return text
    return _fix(_converter("t2s").convert(text), "hans")


def to_hant(text: str, table: str = "s2t") -> str:
    """Traditional text by ``table`` (one of :data:`HANT_TABLES`), via Simplified."""
    if table not in HANT_TABLES:
        raise ValueError(f"unknown zh-Hant table {table!r}; expected one of {HANT_TABLES}")
    if not text:
        return text
    return _fix(_converter(table).convert(to_hans(text)), "hant")


def detect_script(text: str) -> str:
    """``"Hant"`` when more characters look Traditional than Simplified, else ``"Hans"``."""
    sample = "".join(re.findall(r"[\u4e00-\u9fff]+", text[:60000]))[:6000]
    if not sample:
        return "Hans"
    simplified = _converter("t2s").convert(sample)
    traditional = _converter("s2t").convert(sample)
    trad_chars = sum(1 for a, b in zip(sample, simplified, strict=False) if a != b)
    simp_chars = sum(1 for a, b in zip(sample, traditional, strict=False) if a != b)
    return "Hant" if trad_chars > simp_chars else "Hans"
