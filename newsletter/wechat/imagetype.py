"""An image's real type, read from its bytes (never from its name)."""

from __future__ import annotations

__all__ = ["MIME", "sniff_image"]

MIME = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "bmp": "image/bmp"}


def sniff_image(data: bytes) -> str | None:
    """``jpeg``, ``png``, ``gif`` or ``bmp`` as the bytes say; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM") and len(data) > 26:
        return "bmp"
    return None
