"""A batch that lost its database: what it has done that is not committed yet
(``_Flight``), and recording it after reconnecting (``_recover``).

The batch keeps the outcomes not yet committed and records them, fenced by its claim,
after reconnecting: a dropped connection costs no duplicate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError

from newsletter.core.config import get_settings
from newsletter.core.db import lost_connection, session_scope
from newsletter.delivery.outcomes import Done, Ready, finish_group, hand_back, release_claim

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Flight:
    """What the batch has done that the database has not committed yet.

    Outcomes are written in the transaction that commits with the next group's mark, so
    a lost connection rolls them back; they stay here until a commit has taken them."""

    #: outcomes of messages that went out (or were refused), not yet committed
    unrecorded: list[Done] = field(default_factory=list)
    #: rows of the current group that are (or may be) marked ``sending`` by this claim
    #: but whose message has not gone out
    unsent: list[Ready] = field(default_factory=list)

    def committed(self) -> None:
        self.unrecorded = []
        self.unsent = []


def _recover(claim_token: str, flight: _Flight, exc: DBAPIError) -> None:
    """After the batch lost its database: reconnect with backoff and record the outcomes
    held in memory, fenced by the claim, so a reader is not sent the issue twice. Rows
    another worker took over meanwhile (our lease ran out) are left to it: it counted
    them at risk. Marked rows whose message never went out are given back, and the claim
    on the rest of the batch is released."""
    cfg = get_settings()
    held, unsent = len(flight.unrecorded), len(flight.unsent)
    lost = lost_connection(exc)
    log.warning(
        "batch %s: database %s (%s); %d outcomes kept in memory, recording them",
        claim_token, "connection lost" if lost else "error",
        str(exc.orig or exc).splitlines()[0][:160], held,
    )  # fmt: skip
    deadline = time.monotonic() + cfg.db_retry_seconds
    pause = 0.2
    attempt = 0
    while True:
        attempt += 1
        try:
            with session_scope() as s:
                written = finish_group(s, flight.unrecorded, claim_token)
                back = hand_back(s, claim_token, flight.unsent)
                release_claim(s, claim_token)
        except DBAPIError as again:
            if not lost_connection(again) or time.monotonic() + pause > deadline:
                log.error(
                    "batch %s: %d outcomes could not be recorded (%s); their rows are sent "
                    "again after the lease, counted at risk",
                    claim_token, held, type(again.orig or again).__name__,
                )  # fmt: skip
                return
            time.sleep(pause)  # backoff: the server is restarting or the link is down
            pause = min(pause * 2, 5.0)
            continue
        log.warning(
            "batch %s: recorded %d of %d outcomes after %d attempts, gave back %d of %d "
            "unsent; %d taken over by another worker meanwhile (counted at risk)",
            claim_token, written, held, attempt, back, unsent, held - written,
        )  # fmt: skip
        flight.committed()
        return
