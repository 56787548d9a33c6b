"""The sample issue, as sent, scores low with SpamAssassin (offline, -L)."""

from __future__ import annotations

import re
import subprocess

from newsletter.audience.service import get_or_create_list
from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.run import drive_inline
from newsletter.issues.store import create_issue
from newsletter.models import Send, Subscriber, Subscription
from tests.conftest import EXAMPLES


def test_sample_issue_scores_at_most_half_a_point(sqlite_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    reset_settings(sqlite_settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    with session_scope() as s:
        issue, _ = create_issue(s, EXAMPLES / "issue-sample.md")
        ml = get_or_create_list(s, "周报订阅")
        sub = Subscriber(email="reader@example.com", name="林晓")
        s.add(sub)
        s.flush()
        s.add(Subscription(subscriber_id=sub.id, list_id=ml.id))
        send = Send(publication_id=issue.publication_id, issue_id=issue.id, list_id=ml.id)
        s.add(send)
        s.flush()
        send_id = send.id
    assert drive_inline(send_id) == "finished"
    out = subprocess.run(
        ["spamassassin", "-L", "-t"], input=sink.messages[0][2], capture_output=True, timeout=120
    ).stdout.decode("utf-8", "replace")
    score = float(re.search(r"Content analysis details:\s+\((-?[\d.]+) points", out).group(1))  # type: ignore[union-attr]
    rules = re.findall(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)", out, re.M)
    assert "MPART_ALT_DIFF" not in {r for _p, r in rules}
    assert score <= 0.5, out
    assert all(float(p) <= 0.0 for p, _r in rules), out
