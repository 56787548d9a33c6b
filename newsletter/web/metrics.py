"""``GET /metrics``: the numbers ops watch, in Prometheus' text format.

Off unless ``NEWSLETTER_METRICS_TOKEN`` is set; then a scraper must send
``Authorization: Bearer <token>`` (deny by default: the endpoint names sends and
queue sizes). Everything is read at scrape time with a handful of aggregate
queries over live sends, so a scrape costs milliseconds and holds no state:

* ``newsletter_sends{state}``: sends per state;
* ``newsletter_deliveries{state}``: deliveries of live sends (planning, sending,
  paused) per state; ``queued`` + ``deferred`` is the queue depth;
* ``newsletter_deliveries_at_risk``: possible duplicates in live sends;
* ``newsletter_sends_auto_paused``: sends paused because the relay is unreachable;
* ``newsletter_events_stream_length`` / ``newsletter_events_pending``: the open
  and click event stream, and what the ingesters have read but not acknowledged
  (the ingest lag), when Redis is configured;
* ``newsletter_wechat_publications{state}``: WeChat channel steps;
* ``newsletter_scrape_errors``: parts that could not be read (1 each).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import func, select

from ..config import get_settings
from ..db import session_scope
from ..delivery.sends import LIVE
from ..models import Delivery, Send

__all__ = ["render_metrics", "router"]

router = APIRouter()


def _line(name: str, value: float, **labels: str) -> str:
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def render_metrics() -> str:
    """The metrics, as the text exposition format."""
    out: list[str] = []
    errors = 0

    def head(name: str, kind: str, text: str) -> None:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")

    with session_scope() as s:
        head("newsletter_sends", "gauge", "Sends per state.")
        for state, n in s.execute(select(Send.state, func.count()).group_by(Send.state)):
            out.append(_line("newsletter_sends", n, state=state))
        head("newsletter_deliveries", "gauge", "Deliveries of live sends per state.")
        live = select(Send.id).where(Send.state.in_(LIVE)).scalar_subquery()
        for state, n in s.execute(
            select(Delivery.state, func.count())
            .where(Delivery.send_id.in_(live))
            .group_by(Delivery.state)
        ):
            out.append(_line("newsletter_deliveries", n, state=state))
        head("newsletter_deliveries_at_risk", "gauge", "Possible duplicates in live sends.")
        at_risk = s.scalar(
            select(func.count()).where(Delivery.send_id.in_(live), Delivery.at_risk.is_(True))
        )
        out.append(_line("newsletter_deliveries_at_risk", at_risk or 0))
        head("newsletter_sends_auto_paused", "gauge", "Sends paused for an unreachable relay.")
        paused = s.scalar(select(func.count()).where(Send.auto_paused_at.is_not(None)))
        out.append(_line("newsletter_sends_auto_paused", paused or 0))
        try:
            from ..wechat.models import WeChatPublication

            rows = s.execute(
                select(WeChatPublication.state, func.count()).group_by(WeChatPublication.state)
            ).all()
            head("newsletter_wechat_publications", "gauge", "WeChat channel steps per state.")
            for state, n in rows:
                out.append(_line("newsletter_wechat_publications", n, state=state))
        except Exception:
            errors += 1
    cfg = get_settings()
    if cfg.redis_url:
        try:
            from ..redisconn import redis_client
            from ..tracking.events import STREAM
            from ..tracking.ingester import GROUP

            r = redis_client()
            key = cfg.redis_prefix + STREAM
            head("newsletter_events_stream_length", "gauge", "Events in the stream.")
            out.append(_line("newsletter_events_stream_length", int(r.xlen(key))))
            pending = 0
            for g in r.xinfo_groups(key) if r.exists(key) else []:
                if str(g.get("name")) in (GROUP, GROUP.encode()):
                    pending = int(g.get("pending", 0)) + int(g.get("lag") or 0)
            head("newsletter_events_pending", "gauge", "Events read or waiting, not acked.")
            out.append(_line("newsletter_events_pending", pending))
        except Exception:
            errors += 1
    head("newsletter_scrape_errors", "gauge", "Parts of this scrape that could not be read.")
    out.append(_line("newsletter_scrape_errors", errors))
    return "\n".join(out) + "\n"


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
    return PlainTextResponse(render_metrics(), media_type="text/plain; version=0.0.4")
