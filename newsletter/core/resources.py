"""Files that ship inside the package: templates, migrations, data, catalogues, examples.

They are package data, found through :mod:`importlib.resources`, so a wheel installed
anywhere (``pip install``, ``pipx``, a container) finds them exactly as a checkout does.
No code locates them by walking up from ``__file__``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["package_path", "resource_path"]


def resource_path(*parts: str) -> Path:
    """The on-disk path of a file or folder in ``newsletter/resources`` (templates, locale,
    data, migrations)."""
    return package_path("newsletter.resources", *parts)


def package_path(package: str, *parts: str) -> Path:
    """The on-disk path of a file or folder shipped in ``package`` (``newsletter.web``'s
    static files, ``newsletter.devtools``' examples).

    The package is always installed as a directory (a checkout, an editable install or an
    unpacked wheel), so the traversable is a real path; Jinja2's loader and Alembic need one.
    """
    return Path(str(files(package).joinpath(*parts)))
