"""Set up prometheus-client's multi-process mode before anything imports it.

A Celery worker runs its tasks in forked child processes; each child's counters go to
files in one folder, and the worker's ``/metrics`` sums them. prometheus-client picks
its mode when it is first imported, so this module imports neither it nor anything
that does.
"""

from __future__ import annotations

import os
import shutil

from newsletter.core.config import get_settings

__all__ = ["prepare_multiprocess"]


def prepare_multiprocess(process: str) -> None:
    """A fresh folder for this process's children's counters, in the environment."""
    folder = get_settings().var_dir / f"metrics-{process}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
