"""``GET /metrics`` (Prometheus), ``/healthz`` and ``/readyz`` of the web process.

``/metrics`` is off unless ``NEWSLETTER_METRICS_TOKEN`` is set; then a scraper must
send ``Authorization: Bearer <token>`` (deny by default: the figures name sends and
queue sizes). It holds this process's counters and the ledger's figures, read at
scrape time with a handful of aggregate queries (:mod:`newsletter.core.telemetry`).
``/healthz`` says the process answers; ``/readyz`` that it reaches the database (and
the broker, in the Celery mode): 503 otherwise, for a load balancer.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from newsletter.core.config import get_settings
from newsletter.core.telemetry import CONTENT_TYPE, broker_ready, database_ready, render
from newsletter.reports.metrics import LedgerCollector

__all__ = ["render_metrics", "router"]

router = APIRouter()


def render_metrics() -> str:
    return render(LedgerCollector()).decode("utf-8")


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    token = get_settings().metrics_token.get_secret_value()
    if not token:
        return PlainTextResponse("not found\n", status_code=404)
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return PlainTextResponse(
            "metrics need the bearer token / 需要令牌\n",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Response(render(LedgerCollector()), media_type=CONTENT_TYPE)


@router.get("/healthz", include_in_schema=False)
def healthz() -> Response:
    return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})


@router.get("/readyz", include_in_schema=False)
def readyz() -> Response:
    problems = []
    for name, check in (("database", database_ready), ("broker", broker_ready)):
        try:
            if not check():
                problems.append(name)
        except Exception:
            problems.append(name)
    if problems:
        return PlainTextResponse(
            f"not ready: {', '.join(problems)}\n",
            status_code=503,
            headers={"Cache-Control": "no-store"},
        )
    return PlainTextResponse("ready\n", headers={"Cache-Control": "no-store"})
