"""The embedded mode's dispatcher: the work runs in this process, before the call returns
(a background job runs in a thread, so the request that started it answers at once).

Registered as ``inline`` in the ``newsletter.dispatch`` entry point group; found by
:func:`newsletter.core.dispatch.dispatcher` when no broker is configured.
"""

from __future__ import annotations

from pathlib import Path

from newsletter.core.dispatch import register
from newsletter.core.errors import ConfigError

__all__ = ["InProcess"]


class InProcess:
    """The embedded mode: everything runs in this process, before the call returns."""

    def check(self) -> None:
        return None

    def start_send(self, send_id: int) -> None:
        from newsletter.delivery.run import start_channel

        start_channel(send_id)

    def run_batches(self, send_id: int, chains: int) -> None:
        from newsletter.delivery.run import drive_inline

        drive_inline(send_id)

    def run_job(self, job_id: int) -> None:
        import threading

        from newsletter.runtime.jobs import run

        threading.Thread(target=run, args=(job_id,), daemon=True, name=f"job-{job_id}").start()

    def run_worker(self, concurrency: int, loglevel: str) -> None:
        raise ConfigError(
            "the embedded mode has no workers: set NEWSLETTER_BROKER_URL / 嵌入模式无需 worker"
        )

    def run_beat(self, loglevel: str, schedule_file: Path) -> None:
        raise ConfigError(
            "the embedded mode has no beat: set NEWSLETTER_BROKER_URL / 嵌入模式无需 beat"
        )


register("inline", InProcess())
