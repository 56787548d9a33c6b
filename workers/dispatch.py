"""The Celery dispatcher: the broker side of :mod:`newsletter.core.dispatch`.

Importing this module registers it under the name ``celery``; ``newsletter``
finds it through the ``newsletter.core.dispatch`` entry point and never imports
``workers`` itself.
"""

from __future__ import annotations

from pathlib import Path

from newsletter.core.dispatch import register
from newsletter.core.errors import ServiceUnavailable

__all__ = ["CeleryDispatcher"]


class CeleryDispatcher:
    def check(self) -> None:
        """Connect to the broker once, so that nothing is planned for a broker that is down."""
        from workers.celery_app import app

        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=3)
        except Exception as exc:
            raise ServiceUnavailable(
                "the message broker is unreachable; nothing was started / "
                "无法连接消息代理，未做任何更改"
            ) from exc

    def start_send(self, send_id: int) -> None:
        from workers.tasks import start_send

        try:
            start_send.delay(send_id)
        except Exception as exc:  # the broker is down: nothing was handed off
            raise ServiceUnavailable(
                f"the message broker is unreachable; send {send_id} was not started / "
                "无法连接消息代理，未能开始发送"
            ) from exc

    def run_batches(self, send_id: int, chains: int) -> None:
        from workers.tasks import send_batch

        try:
            for _ in range(chains):
                send_batch.delay(send_id)
        except Exception as exc:
            raise ServiceUnavailable(
                f"the message broker is unreachable; send {send_id} was not resumed / "
                "无法连接消息代理，未能继续发送"
            ) from exc

    def run_job(self, job_id: int) -> None:
        from workers.tasks import run_job

        try:
            run_job.delay(job_id)
        except Exception as exc:
            raise ServiceUnavailable(
                f"the message broker is unreachable; job {job_id} was not started / "
                "无法连接消息代理，任务未能开始"
            ) from exc

    def run_worker(self, concurrency: int, loglevel: str) -> None:
        from workers.celery_app import app

        app.worker_main(
            [
                "worker",
                f"--concurrency={concurrency}",
                f"--loglevel={loglevel}",
                "-Q",
                app.conf.task_default_queue,
            ]
        )

    def run_beat(self, loglevel: str, schedule_file: Path) -> None:
        from workers.celery_app import app

        app.start(["beat", f"--loglevel={loglevel}", "-s", str(schedule_file)])


register("celery", CeleryDispatcher())
