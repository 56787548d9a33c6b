"""QR codes that lead to the subscribe form (segno: pure Python, no imaging library).

The same URL always gives the same bytes, so a QR image in a WeChat article is
uploaded once per account (assets are remembered by their SHA-256).
"""

from __future__ import annotations

import hashlib
import io

import segno

__all__ = ["qr_png", "qr_sha256", "qr_svg"]


def _code(url: str) -> segno.QRCode:
    # Error correction M: still readable from a photo of a printed page.
    return segno.make_qr(url, error="m", boost_error=False)


def qr_svg(url: str, scale: int = 6) -> str:
    buf = io.BytesIO()
    _code(url).save(
        buf,
        kind="svg",
        scale=scale,
        border=2,
        xmldecl=False,
        svgns=True,
        title="订阅二维码 / subscribe QR code",
    )
    return buf.getvalue().decode("utf-8")


def qr_png(url: str, scale: int = 8) -> bytes:
    buf = io.BytesIO()
    _code(url).save(buf, kind="png", scale=scale, border=2)
    return buf.getvalue()


def qr_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
