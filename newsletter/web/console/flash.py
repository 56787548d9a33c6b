"""One-line messages carried across a form's redirect (a signed, one-minute cookie)."""

from __future__ import annotations

from fastapi.responses import RedirectResponse
from itsdangerous import URLSafeSerializer

from newsletter.core.config import get_settings
from newsletter.web.console.auth import secure_cookies

__all__ = ["FLASH", "back", "flash_signer"]

FLASH = "nl_flash"


def flash_signer() -> URLSafeSerializer:
    return URLSafeSerializer(get_settings().secret_key.get_secret_value(), salt="console-flash")


def back(to: str, message: str | None = None, level: str = "ok") -> RedirectResponse:
    """A 303 to ``to`` that shows ``message`` once on the next page."""
    resp = RedirectResponse(to, status_code=303)
    if message:
        resp.set_cookie(
            FLASH,
            flash_signer().dumps([level, message[:500]]),
            max_age=60,
            httponly=True,
            samesite="lax",
            secure=secure_cookies(),
            path="/console",
        )
    return resp
