"""The customer's real brief, sent in both variants, scores low with SpamAssassin.

The text part must not hard-wrap Chinese: every wrapped line would count as a
word and trip MPART_ALT_DIFF (text and HTML parts look different).
"""

from __future__ import annotations

import re
import subprocess
from email import message_from_bytes
from pathlib import Path

from newsletter.audience.service import get_or_create_list
from newsletter.content.textimport import import_text
from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.run import drive_inline
from newsletter.issues.store import create_issue
from newsletter.models import Send, Subscriber, Subscription

REAL = Path(__file__).parents[1] / "content" / "fixtures" / "real-brief-2021-08-02.txt"


def test_real_brief_in_both_variants_scores_at_most_half_a_point(  # type: ignore[no-untyped-def]
    sqlite_settings, smtp_sink, tmp_path: Path
) -> None:
    port, sink = smtp_sink
    reset_settings(sqlite_settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    md = tmp_path / "real.md"
    md.write_text(
        import_text(REAL.read_text(encoding="utf-8"), front_matter={"number": 31}).markdown,
        encoding="utf-8",
    )
    with session_scope() as s:
        issue, _ = create_issue(s, md)
        ml = get_or_create_list(s, "周报订阅")
        for email, variant in (("hans@example.com", "zh-Hans"), ("hant@example.com", "zh-Hant")):
            sub = Subscriber(email=email, name="林晓", variant=variant)
            s.add(sub)
            s.flush()
            s.add(Subscription(subscriber_id=sub.id, list_id=ml.id))
        send = Send(publication_id=issue.publication_id, issue_id=issue.id, list_id=ml.id)
        s.add(send)
        s.flush()
        send_id = send.id
    assert drive_inline(send_id) == "finished"
    messages = {rcpt[0]: raw for _from, rcpt, raw in sink.messages}
    assert len(messages) == 2
    langs = set()
    for raw in messages.values():
        msg = message_from_bytes(raw)
        html = next(p for p in msg.walk() if p.get_content_type() == "text/html")
        langs.add(re.search(rb'lang="([^"]+)"', html.get_payload(decode=True)).group(1))  # type: ignore[union-attr]
        text = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
        body = text.get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
        assert max(len(line.encode()) for line in body.splitlines()) <= 998
        out = subprocess.run(
            ["spamassassin", "-L", "-t"], input=raw, capture_output=True, timeout=180
        ).stdout.decode("utf-8", "replace")
        score = float(re.search(r"Content analysis details:\s+\((-?[\d.]+) points", out).group(1))  # type: ignore[union-attr]
        rules = {r for _p, r in re.findall(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)", out, re.M)}
        assert not {r for r in rules if r.startswith("MPART_ALT_DIFF")}, out
        assert score <= 0.5, out
    assert langs == {b"zh-CN", b"zh-TW"}
