"""Errors raised by the renderers. All derive from :class:`NewsletterError`."""

from __future__ import annotations

from newsletter.core.errors import NewsletterError

__all__ = ["EmailBudgetError", "RenderError", "WeChatLimitError"]


class RenderError(NewsletterError):
    """An issue cannot be rendered for some channel within that channel's limits."""


class EmailBudgetError(RenderError):
    """Even the digest email exceeds the email size budget."""


class WeChatLimitError(RenderError):
    """The WeChat articles cannot respect WeChat's limits (count, length)."""
