"""A message whose DATA reply never reaches the worker may have been delivered.

The partition harness (tests/fleet) cut a relay off while a worker was inside a
transaction with it: the worker had handed the body to its socket, timed out waiting
for the reply, deferred the delivery and re-sent it through the other relay. When the
link healed, the kernel delivered the body it still held for the closed socket, the
first relay accepted it, and the reader had two copies, one of them not counted at
risk (docs/delivery.md, "Open finding"). Here the relay accepts the message but
answers after the worker's timeout, every time, without a network.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.batch import process_batch
from newsletter.delivery.run import start
from newsletter.models import Delivery
from tests.factories import seed


def test_a_message_whose_data_reply_is_lost_is_counted_at_risk(pg_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    reset_settings(pg_settings.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_timeout": 1.0,
        "smtp_data_timeout": 1.0}))  # fmt: skip

    def late(_envelope: object) -> None:
        time.sleep(1.5)  # the message is accepted and stored, after the worker gave up

    sink.on_data = late  # type: ignore[assignment]
    ids = seed(1)
    start(ids["send"])
    process_batch(ids["send"])
    time.sleep(1.0)  # the sink stores it once its reply is (too late) on the wire
    assert len(sink.messages) == 1  # the relay has it
    with session_scope() as s:
        state, at_risk = s.execute(select(Delivery.state, Delivery.at_risk)).one()
    assert state == "deferred"  # it will be sent again …
    assert at_risk, "a delivery the relay may have accepted is re-sent without being counted"
