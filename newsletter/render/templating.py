"""The one Jinja2 environment used by every renderer.

Templates live in the repository's ``templates/`` directory (resolved from
this package), or in ``$NEWSLETTER_TEMPLATES_DIR`` when set.  Autoescape is
on for every template; already-safe HTML from the document model must be
passed as :class:`markupsafe.Markup`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from newsletter.core.resources import resource_path

__all__ = ["ENV", "TEMPLATES_DIR", "render_template"]

TEMPLATES_DIR = Path(os.environ.get("NEWSLETTER_TEMPLATES_DIR") or resource_path("templates"))

ENV = Environment(
    loader=FileSystemLoader(str(TEMPLATES_DIR)),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
    auto_reload=False,
)


def render_template(name: str, **context: Any) -> str:
    """Render ``templates/<name>`` with ``context``."""
    return ENV.get_template(name).render(**context)
