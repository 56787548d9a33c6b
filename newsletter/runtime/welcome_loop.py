"""The embedded mode's welcome sender: a background thread of the web process that plans
the welcome steps that are due and sends them every few seconds (with a broker, beat's
``newsletter.tick`` does this and the workers send)."""

from __future__ import annotations

import logging
import threading

__all__ = ["run_once", "start"]

log = logging.getLogger(__name__)
_started: threading.Event | None = None


def run_once() -> list[int]:
    """Plan what is due and drive those sends in this thread; returns the sends driven."""
    from newsletter.delivery.run import drive_inline
    from newsletter.delivery.welcome_due import plan_due

    driven = plan_due()
    for send_id in driven:
        try:
            drive_inline(send_id, max_wait=0.0)  # retries wait for a later round
        except Exception:  # one send's failure must not hold back the others
            log.exception("welcome: send %s failed", send_id)
    return driven


def start(every: float = 5.0) -> threading.Event:
    """Start the loop once per process; returns the event that stops it."""
    global _started
    if _started is not None:
        return _started
    stop = _started = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                run_once()
            except Exception:  # a round that failed must not end the loop
                log.exception("welcome round failed")
            stop.wait(every)

    threading.Thread(target=loop, daemon=True, name="welcome").start()
    return stop
