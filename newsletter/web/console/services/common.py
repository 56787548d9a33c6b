"""What every console service module shares: the refusal error, the file-name rule."""

from __future__ import annotations

import re

from newsletter.core.errors import NewsletterError

__all__ = ["SAFE_NAME", "ConsoleError"]

#: What a stored file name may not hold (replaced by ``_``): anything but word
#: characters, dots, dashes and CJK.
SAFE_NAME = re.compile(r"[^\w.\-\u4e00-\u9fff]+")


class ConsoleError(NewsletterError):
    """A console request was refused; the message says why (shown to the user)."""
