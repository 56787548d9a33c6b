"""Thin tasks: unpack ids, call newsletter functions, re-enqueue as told."""

from __future__ import annotations

from newsletter.delivery import run
from newsletter.schedule.tick import tick as do_tick
from newsletter.tracking.ingester import consume
from workers.celery_app import app


@app.task(name="newsletter.start_send")
def start_send(send_id: int) -> None:
    if run.channel_of(send_id) == "wechat":
        publish_wechat.delay(send_id)
        return
    run.start(send_id)
    from newsletter.core.config import get_settings

    for _ in range(get_settings().send_parallelism):
        send_batch.delay(send_id)


@app.task(name="newsletter.publish_wechat")
def publish_wechat(send_id: int) -> None:
    run.start_channel(send_id)


@app.task(name="newsletter.wechat_stats")
def wechat_stats() -> None:
    from newsletter.core.wechat_settings import get_wechat_settings
    from newsletter.wechat.stats import sync_stats

    if get_wechat_settings().configured:
        sync_stats()


@app.task(name="newsletter.send_batch")
def send_batch(send_id: int) -> str:
    nxt = run.step_resilient(send_id)
    if nxt.action == "again":
        send_batch.delay(send_id)
    elif nxt.action == "later":
        send_batch.apply_async((send_id,), countdown=nxt.delay)
    return nxt.action


@app.task(name="newsletter.run_job")
def run_job(job_id: int) -> str:
    """An import or a bulk action (progress goes to its row; see newsletter.runtime.jobs)."""
    from newsletter.runtime.jobs import run

    return run(job_id)


@app.task(name="newsletter.tick")
def tick() -> None:
    for send_id in do_tick():
        start_send.delay(send_id)


@app.task(name="newsletter.ingest_events")
def ingest_events() -> int:
    return consume(block_ms=100, max_batches=20)


@app.task(name="newsletter.deliver_webhooks")
def deliver_webhooks() -> int:
    """Send the event webhooks that are due (signed, in order, with retries), and mail the
    review notices not mailed yet."""
    from newsletter.delivery.eventhooks import deliver_due
    from newsletter.delivery.notices import mail_due

    mail_due()
    return deliver_due()


@app.task(name="newsletter.purge_events")
def purge_events() -> dict[str, int]:
    """Delete raw events older than each publication's retention period."""
    from newsletter.core.db import session_scope
    from newsletter.tracking.retention import purge

    with session_scope() as s:
        return purge(s)
