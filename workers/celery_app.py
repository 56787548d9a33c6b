"""The Celery application.

Messages carry ids, never payloads; tasks acknowledge late (after they ran), so
a worker killed mid-task has its message redelivered, and every task is safe to
run twice because the database ledger, not the message, decides what is done.
"""

from __future__ import annotations

import contextlib

from celery import Celery, signals
from celery.schedules import crontab

from newsletter.core.config import Settings, get_settings

__all__ = ["app", "configure"]


def configure(app: Celery, cfg: Settings | None = None) -> Celery:
    """(Re)apply the settings to ``app``; tests call it after changing settings."""
    cfg = cfg or get_settings()
    _drop_pools(app)
    app.conf.update(
        broker_url=cfg.broker_url or "memory://",
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # Task events for Flower (and `celery events`): sent, started, succeeded …
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_transport_options={"visibility_timeout": 3600},
        task_default_queue=f"{cfg.redis_prefix}default",
        timezone="UTC",
        beat_schedule={
            "tick": {"task": "newsletter.tick", "schedule": float(cfg.tick_seconds)},
            "ingest": {"task": "newsletter.ingest_events", "schedule": 2.0},
            "webhooks": {"task": "newsletter.deliver_webhooks", "schedule": 5.0},
            # WeChat datacube numbers are final the next day: sync once a day.
            "purge-events": {
                "task": "newsletter.purge_events",
                "schedule": crontab(hour=4, minute=10),
            },
            "wechat-stats": {
                "task": "newsletter.wechat_stats",
                "schedule": crontab(hour=3, minute=30),
            },
        },
    )
    return app


def _drop_pools(app: Celery) -> None:
    """Forget pooled broker connections: after the broker URL changes, a cached producer
    would still publish to the old broker (and a broker that is down would seem up)."""
    pool = getattr(app, "_pool", None)
    if pool is not None:
        with contextlib.suppress(Exception):  # a dead connection must not stop this
            pool.force_close_all()
        app._pool = None  # type: ignore[attr-defined]
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


app = configure(Celery("newsletter", include=["workers.tasks"]))


def _add_database_gate(app: Celery) -> None:
    from workers.dbgate import DatabaseGate

    app.steps["consumer"].add(DatabaseGate)


_add_database_gate(app)


def _refuse_default_key(process: str) -> None:
    """Outside the embedded mode a worker or beat never starts with the built-in key."""
    import sys

    problem = get_settings().secret_key_problem()
    if problem is not None:
        sys.stderr.write(f"error: {process}: refusing to start: {problem}\n")
        raise SystemExit(2)


@signals.worker_init.connect
def _check_worker_key(**_: object) -> None:
    _refuse_default_key("worker")
    _refuse_bad_relays()


def _refuse_bad_relays() -> None:
    """A worker never starts with relays or warm-up settings it cannot use (one line, en / 中文)."""
    import sys

    from newsletter.core.errors import ConfigError
    from newsletter.delivery.relay_config import load_relays
    from newsletter.delivery.warmup import check_settings

    try:
        load_relays()
        check_settings()
    except ConfigError as exc:
        sys.stderr.write(f"error: worker: refusing to start: {exc}\n")
        raise SystemExit(2) from None


@signals.beat_init.connect
def _check_beat_key(**_: object) -> None:
    _refuse_default_key("beat")


@signals.worker_init.connect
def _note_pool_size(sender: object = None, **_: object) -> None:
    """Tell the delivery engine how many processes this worker sends with (its children
    inherit the environment): with more than the host's cores, batches build inline."""
    import os

    from newsletter.delivery.batch import POOL_ENV

    os.environ[POOL_ENV] = str(getattr(sender, "concurrency", None) or 1)


@signals.worker_init.connect
def _yield_the_cpu(**_: object) -> None:
    """Run at ``worker_nice`` (before the pool forks, so every child inherits it): on a
    shared host the web, the pixel, PostgreSQL and a local relay come first."""
    import os

    want = get_settings().worker_nice
    if want > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, want)


@signals.worker_init.connect
def _keep_the_heap(**_: object) -> None:
    """Freed message buffers stay mapped for the next message (``newsletter.core.heap``);
    set before the pool forks, so every child has it."""
    from newsletter.core.heap import keep_freed_memory

    keep_freed_memory()


@signals.worker_init.connect
def _preload_sending(**_: object) -> None:
    """Import the sending path and its database driver, and load the DKIM key, once in
    the parent before the pool forks: a child that did it on its first batch spent
    ~0.2 s of CPU on it, and all of them at once delayed a send's first message."""
    import psycopg  # noqa: F401  (SQLAlchemy imports it on the first connection)
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

    import newsletter.delivery.batch  # noqa: F401
    from newsletter.delivery.compiled import preload

    preload()


@signals.worker_init.connect
def _serve_worker_metrics(**_: object) -> None:
    from newsletter.core.telemetry import broker_ready, database_ready, serve_process

    serve_process("worker", 0, lambda: database_ready() and broker_ready())


@signals.beat_init.connect
def _serve_beat_metrics(**_: object) -> None:
    from newsletter.core.telemetry import broker_ready, database_ready, serve_process

    serve_process("beat", 1, lambda: database_ready() and broker_ready())
