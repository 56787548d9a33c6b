"""What every console service module shares: the refusal error."""

from __future__ import annotations

from newsletter.core.errors import NewsletterError

__all__ = ["ConsoleError"]


class ConsoleError(NewsletterError):
    """A console request was refused; the message says why (shown to the user)."""
