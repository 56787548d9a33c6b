"""The one seam through which work is handed off: start a send, run its batches,
publish to WeChat, run a background job (an import, a bulk action), run a worker
or the beat.

Two implementations keep the same contract:

* :class:`InProcess` (the embedded mode): the work runs here, now (a background
  job in a thread of this process, so the request that started it returns at once);
* the Celery dispatcher, which lives in ``workers/`` and is registered under the
  ``newsletter.runtime.dispatch`` entry point (``celery``). ``newsletter`` never imports
  ``workers`` (import-linter checks it); it finds the registered implementation
  by name when a broker is configured.

Every handed-off action is idempotent on the receiving side (the ledger, not the
message, decides what is done), so a dispatcher may deliver a message twice.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from newsletter.core.config import get_settings
from newsletter.core.errors import ConfigError, ServiceUnavailable

__all__ = ["Dispatcher", "InProcess", "dispatcher", "register"]


class Dispatcher(Protocol):
    def check(self) -> None:
        """Raise :class:`ServiceUnavailable` when work cannot be handed off now."""

    def start_send(self, send_id: int) -> None:
        """Plan (if needed) and send ``send_id`` (any channel)."""

    def run_batches(self, send_id: int, chains: int) -> None:
        """Send what is left of ``send_id`` with ``chains`` parallel batch chains."""

    def run_job(self, job_id: int) -> None:
        """Run background job ``job_id`` (see :mod:`newsletter.runtime.jobs`) somewhere else than
        the request that created it; its progress is written to its row."""

    def run_worker(self, concurrency: int, loglevel: str) -> None: ...

    def run_beat(self, loglevel: str, schedule_file: Path) -> None: ...


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


_registered: dict[str, Dispatcher] = {}


def register(name: str, impl: Dispatcher) -> None:
    """Register a dispatcher by name (``workers`` registers ``celery`` when it starts)."""
    _registered[name] = impl


def dispatcher() -> Dispatcher:
    """The dispatcher for the current settings: in process, or the broker's."""
    if get_settings().embedded:
        return InProcess()
    if "celery" not in _registered:
        for ep in entry_points(group="newsletter.runtime.dispatch", name="celery"):
            try:
                ep.load()  # the module registers itself
            except Exception as exc:  # a broken install: one clear line
                raise ServiceUnavailable(
                    f"the Celery dispatcher cannot be loaded ({type(exc).__name__}) / "
                    "无法加载 Celery 分发器"
                ) from exc
    try:
        return _registered["celery"]
    except KeyError:
        raise ConfigError(
            "no dispatcher for the broker is installed (workers package missing) / "
            "未安装 worker 分发器"
        ) from None
