"""This process's name where other processes see it: leases and stream consumer groups."""

from __future__ import annotations

import os
import socket

__all__ = ["worker_name"]

# Taken when first imported: a worker imports the sending path before its pool forks,
# so its children share the name (leases are also told apart by a random suffix).
_NAME = f"{socket.gethostname()}:{os.getpid()}"


def worker_name() -> str:
    """``host:pid`` of the process that first imported this module."""
    return _NAME
