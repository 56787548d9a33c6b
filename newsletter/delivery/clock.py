"""The delivery engine reads the product's one clock (``newsletter.core.clock``)."""

from __future__ import annotations

from newsletter.core.clock import now, set_clock

__all__ = ["now", "set_clock"]
