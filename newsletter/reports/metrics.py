"""The ledger's state as Prometheus gauges, read at each scrape of the web process:
sends and deliveries per state, queue depth, retries, possible duplicates, auto-pauses,
suppressions, WeChat steps, and the event stream's length and lag."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from newsletter.core import clock

__all__ = ["LedgerCollector"]

log = logging.getLogger(__name__)


class LedgerCollector(Collector):
    """The fleet's state, read from the database (and Redis) at each scrape."""

    def collect(self) -> Iterator[Metric]:
        from sqlalchemy import func, select

        from newsletter.core.config import get_settings
        from newsletter.core.db import session_scope
        from newsletter.delivery.sends import LIVE
        from newsletter.models import Delivery, Send, Suppression

        errors = 0
        now = clock.now()
        try:
            with session_scope() as s:
                sends = GaugeMetricFamily("newsletter_sends", "Sends per state.", labels=["state"])
                for state, n in s.execute(select(Send.state, func.count()).group_by(Send.state)):
                    sends.add_metric([state], n)
                yield sends
                live = select(Send.id).where(Send.state.in_(LIVE)).scalar_subquery()
                queue = GaugeMetricFamily(
                    "newsletter_queue", "Deliveries of live sends per state.", labels=["state"]
                )
                for state, n in s.execute(
                    select(Delivery.state, func.count())
                    .where(Delivery.send_id.in_(live))
                    .group_by(Delivery.state)
                ):
                    queue.add_metric([state], n)
                yield queue
                yield GaugeMetricFamily(
                    "newsletter_queue_depth",
                    "Deliveries of live sends still to go (queued + deferred).",
                    value=s.scalar(
                        select(func.count()).where(
                            Delivery.send_id.in_(live), Delivery.state.in_(("queued", "deferred"))
                        )
                    )
                    or 0,
                )
                yield GaugeMetricFamily(
                    "newsletter_deferrals",
                    "Deliveries of live sends waiting for a retry.",
                    value=s.scalar(
                        select(func.count()).where(
                            Delivery.send_id.in_(live), Delivery.state == "deferred"
                        )
                    )
                    or 0,
                )
                yield GaugeMetricFamily(
                    "newsletter_at_risk",
                    "Possible duplicates in live sends (counted).",
                    value=s.scalar(
                        select(func.count()).where(
                            Delivery.send_id.in_(live), Delivery.at_risk.is_(True)
                        )
                    )
                    or 0,
                )
                yield GaugeMetricFamily(
                    "newsletter_sends_auto_paused",
                    "Sends paused because no relay works.",
                    value=s.scalar(select(func.count()).where(Send.auto_paused_at.is_not(None)))
                    or 0,
                )
                yield GaugeMetricFamily(
                    "newsletter_send_rate",
                    "Messages sent in the last minute, per second.",
                    value=(
                        s.scalar(
                            select(func.count()).where(
                                Delivery.send_id.in_(live),
                                Delivery.state == "sent",
                                Delivery.sent_at >= now - dt.timedelta(seconds=60),
                            )
                        )
                        or 0
                    )
                    / 60,
                )
                supp = GaugeMetricFamily(
                    "newsletter_suppressions",
                    "Suppressed addresses by reason (bounce, complaint, unsubscribe …).",
                    labels=["reason"],
                )
                for reason, n in s.execute(
                    select(Suppression.reason, func.count()).group_by(Suppression.reason)
                ):
                    supp.add_metric([str(reason)], n)
                yield supp
                bounced = GaugeMetricFamily(
                    "newsletter_live_bounces", "Bounced deliveries of live sends."
                )
                bounced.add_metric(
                    [],
                    s.scalar(
                        select(func.count()).where(
                            Delivery.send_id.in_(live), Delivery.state == "bounced"
                        )
                    )
                    or 0,
                )
                yield bounced
                yield from self._wechat(s)
        except Exception:  # a scrape never fails: it says what it could not read
            log.exception("metrics: the database could not be read")
            errors += 1
        cfg = get_settings()
        if cfg.redis_url:
            try:
                yield from self._stream(cfg)
            except Exception:
                log.exception("metrics: Redis could not be read")
                errors += 1
        yield GaugeMetricFamily(
            "newsletter_scrape_errors", "Parts of this scrape that could not be read.", value=errors
        )

    @staticmethod
    def _wechat(s: Any) -> Iterator[Metric]:
        from sqlalchemy import func, select

        from newsletter.models.wechat import WeChatPublication

        fam = GaugeMetricFamily(
            "newsletter_wechat_publications", "WeChat channel steps per state.", labels=["state"]
        )
        for state, n in s.execute(
            select(WeChatPublication.state, func.count()).group_by(WeChatPublication.state)
        ):
            fam.add_metric([state], n)
        yield fam

    @staticmethod
    def _stream(cfg: Any) -> Iterator[Metric]:
        from newsletter.core.redis import redis_client
        from newsletter.tracking.intake import GROUP, STREAM

        r = redis_client()
        key = cfg.redis_prefix + STREAM
        yield GaugeMetricFamily(
            "newsletter_events_stream_length", "Events in the stream.", value=int(r.xlen(key))
        )
        pending = 0
        for g in r.xinfo_groups(key) if r.exists(key) else []:
            if str(g.get("name")) in (GROUP, GROUP.encode()):
                pending = int(g.get("pending", 0)) + int(g.get("lag") or 0)
        yield GaugeMetricFamily(
            "newsletter_ingest_lag",
            "Events read or waiting and not yet acknowledged.",
            value=pending,
        )
