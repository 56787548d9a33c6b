"""Test sends: the real rendered message with the real headers, outside the ledger.

No delivery row is written and no statistic moves: the tracking token names
delivery 0 (which never exists, so opens and clicks of a test message record
nothing) and the unsubscribe token names subscriber 0.
"""

from __future__ import annotations

import dataclasses
import re
from email.header import decode_header, make_header
from typing import Any

from newsletter.audience.addresses import normalise
from newsletter.core.db import session_scope
from newsletter.core.errors import SealError
from newsletter.core.safety.signing import (
    bounce_address,
    delivery_token,
    system_bounce_token,
    unsubscribe_token,
)
from newsletter.delivery.assemble import CompiledMessage, Recipient, _encode_header
from newsletter.delivery.compiled import compiled_for
from newsletter.delivery.relays import connect
from newsletter.issues.seal import report_broken
from newsletter.issues.store import get_issue, render_issue

__all__ = ["TEST_PREFIX", "marked_as_test", "send_test"]

TEST_PREFIX = "[测试] "
_SUBJECT = re.compile(rb"^Subject: (.*?)\r\n(?![ \t])", re.M | re.S)


def send_test(issue_ref: str, to: list[str], variant: str = "zh-Hans") -> list[dict[str, Any]]:
    variants = ["zh-Hans", "zh-Hant"] if variant == "both" else [variant]
    addresses = [normalise(a) for a in to]
    try:
        with session_scope() as s:
            issue = get_issue(s, issue_ref)
            render_issue(s, issue.id)  # once approved: the sealed version, verified
            issue_id = issue.id
    except SealError as exc:
        report_broken(exc)
        raise
    results: list[dict[str, Any]] = []
    conn = connect()
    try:
        for v in variants:
            compiled = marked_as_test(compiled_for(issue_id, v))
            for addr in addresses:
                _mid, msg = compiled.build(
                    Recipient(0, addr, "测试", delivery_token(0), unsubscribe_token(0, None))
                )
                msg = b"X-Newsletter-Test: yes\r\n" + msg
                outcome = conn.send(bounce_address(system_bounce_token()), addr, msg)
                results.append(
                    {"variant": v, "to": addr, "state": outcome.state, "reply": outcome.reply}
                )
    finally:
        conn.close()
    return results


def marked_as_test(compiled: CompiledMessage) -> CompiledMessage:
    """A copy whose Subject starts with "[测试] ", so nobody mistakes a test for the issue.

    The header block is the first chunk; the copy is signed afresh (its DKIM plan and
    joiner are reset), and the cached compiled message is left as it was.
    """
    head = compiled.chunks[0] if compiled.chunks else b""
    if not isinstance(head, bytes):
        return compiled
    m = _SUBJECT.search(head)
    if m is None:
        return compiled
    folded = m.group(1).decode("ascii", "replace").replace("\r\n", "")
    subject = str(make_header(decode_header(folded)))
    if subject.startswith(TEST_PREFIX):
        return compiled
    line = f"Subject: {_encode_header(TEST_PREFIX + subject, 'Subject')}\r\n".encode()
    new_head = head[: m.start()] + line + head[m.end() :]
    return dataclasses.replace(
        compiled, chunks=[new_head, *compiled.chunks[1:]], dkim_plan=None, joiner=None
    )
