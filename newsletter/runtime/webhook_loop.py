"""The embedded mode's webhook sender: a background thread of the web process that sends
the outbox's due events, and mails the review notices not mailed yet, every few seconds
(with a broker, beat runs ``newsletter.deliver_webhooks`` instead, which does both)."""

from __future__ import annotations

import logging
import threading

__all__ = ["start"]

log = logging.getLogger(__name__)
_started: threading.Event | None = None


def start(every: float = 5.0) -> threading.Event:
    """Start the loop once per process; returns the event that stops it."""
    global _started
    if _started is not None:
        return _started
    stop = _started = threading.Event()

    def loop() -> None:
        from newsletter.delivery.eventhooks import deliver_due
        from newsletter.delivery.notices import mail_due

        while not stop.is_set():
            for job in (deliver_due, mail_due):
                try:
                    job()
                except Exception:  # a round that failed must not end the loop
                    log.exception("%s round failed", job.__name__)
            stop.wait(every)

    threading.Thread(target=loop, daemon=True, name="webhooks").start()
    return stop
