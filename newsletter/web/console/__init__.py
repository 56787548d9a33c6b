"""The ops/marketing console (``/console``) and the JSON API (``/api``).

``router`` carries both; ``newsletter.web.app`` includes it.  See docs/console.md.
"""

from __future__ import annotations

from fastapi import APIRouter

from newsletter.web.console.api import router as api_router
from newsletter.web.console.api_audience import router as audience_api_router
from newsletter.web.console.api_issues import router as issues_api_router
from newsletter.web.console.api_reports import router as reports_api_router
from newsletter.web.console.api_sends import router as sends_api_router
from newsletter.web.console.api_settings import router as settings_api_router
from newsletter.web.console.api_webhooks import router as webhooks_api_router
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
router.include_router(issues_api_router)
router.include_router(sends_api_router)
router.include_router(audience_api_router)
router.include_router(reports_api_router)
router.include_router(settings_api_router)
router.include_router(webhooks_api_router)
router.include_router(welcome_api_router)
