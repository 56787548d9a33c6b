"""The ops/marketing console (``/console``) and the JSON API (``/api``).

``router`` carries both; ``newsletter.web.app`` includes it.  See docs/console.md.
"""

from __future__ import annotations

from fastapi import APIRouter

from newsletter.web.console.api import router as api_router
from newsletter.web.console.api_welcome import router as welcome_api_router
from newsletter.web.console.editor import router as editor_router
from newsletter.web.console.routes import router as pages_router
from newsletter.web.console.sso import router as sso_router
from newsletter.web.console.subjects import router as subjects_router

__all__ = ["router"]

router = APIRouter()
router.include_router(pages_router)
router.include_router(sso_router)
router.include_router(editor_router)
router.include_router(subjects_router)
router.include_router(api_router)
router.include_router(welcome_api_router)
