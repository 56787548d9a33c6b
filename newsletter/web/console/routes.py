"""The console's HTML pages (server-rendered Jinja2, a little vanilla JavaScript).

Every route depends on :func:`~.auth.need` with the role it requires, except
the login page, the language switch and the static files.  Forms post back
here and redirect (POST → redirect → GET) with a signed flash message.
"""

from __future__ import annotations

from fastapi import APIRouter

from newsletter.web.console.pages import (
    account,
    audience,
    home,
    issues,
    reports,
    schedule,
    sends,
    settings,
    webhooks,
    welcome,
)
from newsletter.web.console.pages.common import (
    install_error_pages,
    lang_of,
    page,
)

__all__ = ["install_error_pages", "lang_of", "page", "router"]

# Paths never overlap between the page modules, so the order they are included in does
# not change which page answers; within a module, routes keep their order.
router = APIRouter()
for _pages in (
    account,
    home,
    issues,
    sends,
    audience,
    reports,
    schedule,
    settings,
    webhooks,
    welcome,
):
    router.include_router(_pages.router)
