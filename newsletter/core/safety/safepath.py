"""File references that come from content: resolve, then require containment.

An issue names files (images, its cover) by path.  Those paths come from
whoever wrote or uploaded the issue, so they are untrusted: ``../../etc/passwd``,
``/proc/self/environ`` or a symlink that points out of the folder must never
be read.  The rule is the same everywhere a reference is turned into a file:

1. refuse NUL bytes and other control characters, and URLs (``scheme:``);
2. join the reference to the issue's folder and *resolve* it (symlinks followed);
3. accept it only if the resolved path lies inside one of the allowed roots:
   the issue's own folder, or the configured media folder.

:func:`reference_problem` says why a reference is refused (for lint messages
and upload errors); :func:`contained_file` returns the resolved file or None.
"""

from __future__ import annotations

import re
from pathlib import Path

from newsletter.core.config import get_settings

__all__ = ["allowed_roots", "contained_file", "is_inside", "media_dir", "reference_problem"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def media_dir() -> Path:
    """The configured media folder (``{var_dir}/media``)."""
    return get_settings().var_dir / "media"


def is_inside(path: Path, root: Path) -> bool:
    """True when the *resolved* ``path`` is ``root`` or below it (both resolved here)."""
    try:
        p = path.resolve()
        r = root.resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return p == r or r in p.parents


def allowed_roots(base_dir: Path) -> list[Path]:
    return [base_dir, media_dir()]


def reference_problem(base_dir: Path, ref: str) -> str | None:
    """Why ``ref`` (a path written in an issue) may not be read, or None when it may."""
    if not ref:
        return "empty path / 路径为空"
    if _CONTROL.search(ref):
        return "path contains a control character / 路径含控制字符"
    if _SCHEME.match(ref) or ref.startswith("//"):
        return "is a URL, not a file / 不是文件路径"
    try:
        target = base_dir / ref
    except (TypeError, ValueError):
        return "is not a valid path / 路径无效"
    if not any(is_inside(target, root) for root in allowed_roots(base_dir)):
        return "is outside the issue's folder and the media folder / 超出期刊目录与媒体目录"
    return None


def contained_file(base_dir: Path | None, ref: str) -> Path | None:
    """The resolved regular file that ``ref`` names, if it is allowed and exists; else None."""
    if base_dir is None or reference_problem(base_dir, ref) is not None:
        return None
    try:
        target = (base_dir / ref).resolve()
        return target if target.is_file() else None
    except (OSError, RuntimeError, ValueError):
        return None
