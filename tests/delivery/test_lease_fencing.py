"""Fencing by time: a worker never sends under a lease that has run out.

The partition harness (tests/fleet) caught a worker whose claim reached the
database, lost its COMMIT in a partition, and committed when the link healed: it
then marked and sent the whole batch under a lease that had ended 20 s before.
Here the same thing happens every time, without a network, through a whole batch
(``process_batch``): the claiming statement is held for two leases by a one-shot
trigger, so the claim comes back to the worker already expired, and nothing may be
sent under it.
"""

from __future__ import annotations

from newsletter.core.config import reset_settings
from newsletter.core.db import engine
from newsletter.delivery.batch import process_batch
from newsletter.delivery.run import drive_inline, start
from tests.factories import seed

_SLOW_ONCE = """
CREATE TABLE fencing_slow_once (x int);
INSERT INTO fencing_slow_once VALUES (1);
CREATE FUNCTION fencing_slow_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM fencing_slow_once;
  IF FOUND THEN PERFORM pg_sleep(2.5); END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER fencing_slow_once AFTER UPDATE ON delivery
  FOR EACH STATEMENT EXECUTE FUNCTION fencing_slow_once();
"""
_DROP = """
DROP TRIGGER IF EXISTS fencing_slow_once ON delivery;
DROP FUNCTION IF EXISTS fencing_slow_once();
DROP TABLE IF EXISTS fencing_slow_once;
"""


def test_a_claim_that_comes_back_expired_sends_nothing(pg_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    reset_settings(pg_settings.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": port, "lease_seconds": 1}))  # fmt: skip
    ids = seed(5)
    start(ids["send"])
    with engine().begin() as conn:
        conn.exec_driver_sql(_SLOW_ONCE)  # the next UPDATE of delivery (the claim) waits 2.5 s
    try:
        process_batch(ids["send"])
    finally:
        with engine().begin() as conn:
            conn.exec_driver_sql(_DROP)
    sent_under_expired_lease = len(sink.messages)
    # Whatever the batch did, the send still reaches everyone exactly once.
    assert drive_inline(ids["send"]) == "finished"
    rcpts = sorted(r for _f, rs, _d in sink.messages for r in rs)
    assert rcpts == sorted(f"reader{i}@example.com" for i in range(5))
    assert sent_under_expired_lease == 0, (
        f"{sent_under_expired_lease} messages sent under a lease that had run out"
    )
