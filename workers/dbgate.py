"""Refuse to work blind: a worker takes tasks only while it can reach the database.

A worker that cannot reach the database at start, or that has not reached it for longer
than a lease, cancels its task consumer (the broker keeps the messages for the workers
that can use them) and says so in one log line; it consumes again once the database
answers, and says that in one line too.

A thread probes the database on a connection of its own (never the pool's: the parent
of a prefork pool must hold none) every quarter lease, at most every 2 s; the consumer's
timer, which runs in the worker's event loop, acts on what it found. The first probe
runs in :meth:`DatabaseGate.start`, after the task consumer is set up and before the
event loop reads a single message, so a worker started without a database takes none.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import bootsteps

from newsletter.core.config import get_settings
from newsletter.core.db import probe

__all__ = ["DatabaseGate", "Watch"]

log = logging.getLogger("newsletter.worker")


class Watch:
    """When the database last answered, and the last reason it did not."""

    def __init__(self, every: float, timeout: float) -> None:
        self.every = every
        self.timeout = timeout
        self.last_ok: float | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        error = probe(self.timeout)
        with self._lock:
            self.error = error
            if error is None:
                self.last_ok = time.monotonic()
        return error is None

    def down_for(self) -> float | None:
        """Seconds since the database last answered; None while it answers, and
        infinity when it never has (since the worker started)."""
        with self._lock:
            if self.error is None:
                return None
            if self.last_ok is None:
                return float("inf")
            return time.monotonic() - self.last_ok

    def run_in_background(self) -> None:
        if self._thread is not None:
            return
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.every):
                self.check()

        self._thread = threading.Thread(target=loop, name="database-watch", daemon=True)
        self._thread.start()


class DatabaseGate(bootsteps.StartStopStep):
    """A consumer step after the task consumer (``app.steps["consumer"].add``)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)
    label = "database gate"

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        lease = float(get_settings().lease_seconds)
        self.lease = lease
        self.watch = Watch(every=min(2.0, max(0.25, lease / 4)), timeout=min(3.0, lease))
        #: The queues this step cancelled (None while consuming).
        self.closed: list[str] | None = None
        self._tref: Any = None

    def start(self, c: Any) -> None:
        # After a restart of the consumer (the broker came back) while closed, the new task
        # consumer was made without the cancelled queues: nothing to do until the database
        # answers.
        if self.closed is None and not self.watch.check():
            self._close(c)
        self.watch.run_in_background()
        self._tref = c.timer.call_repeatedly(min(1.0, self.watch.every), self._apply, (c,))

    def stop(self, c: Any) -> None:
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None

    def _apply(self, c: Any) -> None:
        down = self.watch.down_for()
        if self.closed is None and down is not None and down > self.lease:
            self._close(c)
        elif self.closed is not None and down is None:
            self._open(c)

    def _close(self, c: Any) -> None:
        queues = c.app.amqp.queues
        names = [q.name for q in c.task_consumer.queues] if c.task_consumer else []
        for name in names:  # Consumer.cancel_task_queue, without its own log line
            queues.deselect(name)
            c.task_consumer.cancel_by_queue(queues.aliases.get(name, name))
        self.closed = names
        down = self.watch.down_for()
        if down is None or down == float("inf"):
            zh, en = "启动时数据库不可达", "database unreachable at start"
        else:
            zh = f"数据库已 {down:.0f} 秒不可达（超过租约 {self.lease:.0f} 秒）"
            en = f"database unreachable for {down:.0f} s (longer than a {self.lease:.0f} s lease)"
        log.error(
            "%s，本 worker 停止接收任务，数据库恢复后自动继续 / %s: this worker takes no "
            "tasks until it is back (queues %s; %s)",
            zh,
            en,
            ", ".join(names) or "-",
            self.watch.error,
        )

    def _open(self, c: Any) -> None:
        names, self.closed = self.closed or [], None
        queues = c.app.amqp.queues
        for name in names:  # Consumer.add_task_queue, without its own log line
            q = queues.select_add(queues[name])
            if not c.task_consumer.consuming_from(name):
                c.task_consumer.add_queue(q)
                c.task_consumer.consume()
        log.warning(
            "数据库已恢复，本 worker 继续接收任务 / database reachable again: "
            "this worker takes tasks again (queues %s)",
            ", ".join(names) or "-",
        )
