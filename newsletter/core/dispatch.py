"""The one seam through which work is handed off: start a send, run its batches,
publish to WeChat, run a background job (an import, a bulk action), run a worker
or the beat.

Two implementations keep the same contract:

* ``inline`` (the embedded mode, :mod:`newsletter.runtime.inline`): the work runs
  here, now (a background job in a thread of this process, so the request that started
  it returns at once);
* ``celery``, which lives in ``workers/``. ``newsletter`` never imports ``workers``
  (import-linter checks it).

Both are found by name through the ``newsletter.dispatch`` entry point group, so this
module, at the base of the layers, never imports the domains that do the work.

Every handed-off action is idempotent on the receiving side (the ledger, not the
message, decides what is done), so a dispatcher may deliver a message twice.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from newsletter.core.config import get_settings
from newsletter.core.errors import ConfigError, ServiceUnavailable

__all__ = ["Dispatcher", "dispatcher", "register"]


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


_registered: dict[str, Dispatcher] = {}


def register(name: str, impl: Dispatcher) -> None:
    """Register a dispatcher by name (each implementation registers itself on import)."""
    _registered[name] = impl


def dispatcher() -> Dispatcher:
    """The dispatcher for the current settings: in process, or the broker's."""
    return _load("inline" if get_settings().embedded else "celery")


def _load(name: str) -> Dispatcher:
    if name not in _registered:
        for ep in entry_points(group="newsletter.dispatch", name=name):
            try:
                ep.load()  # the module registers itself
            except Exception as exc:  # a broken install: one clear line
                raise ServiceUnavailable(
                    f"the {name} dispatcher cannot be loaded ({type(exc).__name__}) / "
                    f"无法加载 {name} 分发器"
                ) from exc
    try:
        return _registered[name]
    except KeyError:
        raise ConfigError(
            f"no {name} dispatcher is installed (reinstall the package) / 未安装 {name} 分发器"
            if name == "inline"
            else "no dispatcher for the broker is installed (workers package missing) / "
            "未安装 worker 分发器"
        ) from None
