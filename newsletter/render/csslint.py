"""CSS in the rendered email, checked against caniemail's support data (vendored).

Finds every CSS property used in inline ``style`` attributes and ``<style>``
blocks (plus ``@media``) and reports the ones that a major client does not
support at all, by the latest test of each client/platform in
``newsletter/resources/data/caniemail.json``.  Partial support ("a") is not reported;
properties that degrade safely by design are listed in :data:`PROGRESSIVE` and
reported as info only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from newsletter.core.resources import resource_path

__all__ = ["MAJOR_CLIENTS", "PROGRESSIVE", "CssFinding", "check_css", "data_version"]

DATA = resource_path("data", "caniemail.json")

#: family → platforms that matter for a Chinese-language newsletter's audience.
MAJOR_CLIENTS: dict[str, tuple[str, ...]] = {
    "gmail": ("desktop-webmail", "ios", "android"),
    "outlook": ("windows", "macos", "outlook-com", "ios", "android"),
    "apple-mail": ("macos", "ios"),
    "yahoo": ("desktop-webmail",),
}
#: Used on purpose with a fallback (e.g. @media for phones; tables carry width attributes).
PROGRESSIVE = frozenset(
    {
        "css-at-media",
        "css-max-width",
        "css-border-radius",
        "css-overflow-wrap",
        "css-opacity",
        "css-display-none",
        "css-box-sizing",
        "css-max-height",
        "css-overflow",
        "css-word-break",
    }
)
_PROP = re.compile(r"(?<![\w-])([a-z][a-z-]*)\s*:", re.I)
_STYLE_ATTR = re.compile(r'style="([^"]*)"', re.I)
_STYLE_BLOCK = re.compile(r"<style[^>]*>(.*?)</style>", re.I | re.S)


@dataclass(frozen=True, slots=True)
class CssFinding:
    level: str  # "warning" | "info"
    feature: str
    title: str
    unsupported_in: tuple[str, ...]


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return data


def data_version() -> str:
    return str(_data().get("last_update_date", "?"))


def _latest(versions: dict[str, str]) -> str:
    if not versions:
        return "u"
    return versions[sorted(versions)[-1]].split()[0]


def _features() -> dict[str, dict[str, Any]]:
    return {f["slug"]: f for f in _data()["data"]}


def used_features(html: str) -> set[str]:
    css = " ".join(_STYLE_ATTR.findall(html)) + " " + " ".join(_STYLE_BLOCK.findall(html))
    css = re.sub(r"url\([^)]*\)", "", css)
    props = {m.group(1).lower() for m in _PROP.finditer(css)}
    slugs = {f"css-{p}" for p in props}
    if "display:none" in css.replace(" ", ""):
        slugs.add("css-display-none")
    if "@media" in css:
        slugs.add("css-at-media")
    return slugs


def check_css(html: str) -> list[CssFinding]:
    features = _features()
    out: list[CssFinding] = []
    for slug in sorted(used_features(html)):
        feat = features.get(slug)
        if feat is None:
            continue
        missing = []
        for family, platforms in MAJOR_CLIENTS.items():
            for platform in platforms:
                versions = feat["stats"].get(family, {}).get(platform)
                if versions is not None and _latest(versions) == "n":
                    missing.append(f"{family}/{platform}")
        if missing:
            level = "info" if slug in PROGRESSIVE else "warning"
            out.append(CssFinding(level, slug, feat["title"], tuple(missing)))
    return out
