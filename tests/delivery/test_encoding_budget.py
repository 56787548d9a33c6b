"""A relay without 8BITMIME: the budget counts the base64-encoded HTML, so the
digest is chosen when base64 would pass the clip; DKIM verifies both ways."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import dkim
import pytest

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery.compiled import clear_cache
from newsletter.delivery.dkim_keys import dns_txt_record, generate_rsa_key
from newsletter.delivery.run import drive_inline
from newsletter.devtools.sink import SinkHandler, start_sink
from newsletter.issues.review import approve
from newsletter.issues.store import create_issue
from newsletter.models import Rendition
from tests.conftest import EXAMPLES
from tests.factories import draft_send_to_one_reader


@pytest.mark.parametrize("eightbit", [True, False])
def test_budget_follows_the_relay_encoding(
    sqlite_settings, tmp_path: Path, monkeypatch, eightbit: bool
) -> None:  # type: ignore[no-untyped-def]
    pem = generate_rsa_key(1024)
    (tmp_path / "k.pem").write_bytes(pem)
    monkeypatch.setenv("NEWSLETTER_DKIM_DOMAIN", "example.org")
    monkeypatch.setenv("NEWSLETTER_DKIM_SELECTOR", "b1")
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY_FILE", str(tmp_path / "k.pem"))
    clear_cache()
    handler = SinkHandler(directory=tmp_path / "sink")
    handler.eightbit = eightbit
    ctrl, _ = start_sink(handler)
    try:
        reset_settings(sqlite_settings.model_copy(update={
            "smtp_host": "127.0.0.1", "smtp_port": ctrl.port, "relay_8bitmime": eightbit,
        }))  # fmt: skip
        with session_scope() as s:
            issue, _ = create_issue(s, EXAMPLES / "issue-sample.md")
            approve(s, issue, "editor@example.org")
            send = draft_send_to_one_reader(s, issue)
            send_id, issue_id = send.id, issue.id
        assert drive_inline(send_id) == "finished"
    finally:
        ctrl.stop()
    with session_scope() as s:
        mode = s.query(Rendition.mode).filter_by(issue_id=issue_id, output="email_html").first()
    # the sample's full HTML (~95 KB) fits 100 KB as 8-bit, not as base64 (~130 KB)
    assert mode is not None and mode[0] == ("full" if eightbit else "digest")
    data = handler.messages[0][2]
    msg = email.message_from_bytes(data, policy=email.policy.default)
    html = msg.get_body(("html",))
    assert html is not None
    assert html["Content-Transfer-Encoding"] == ("8bit" if eightbit else "base64")
    encoded = str(html.get_payload(decode=False)).encode()
    assert len(encoded) < 102_000  # the HTML as transferred stays under Gmail's clip
    lookup = {"b1._domainkey.example.org": dns_txt_record(pem)}

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        found = lookup.get(name.decode().rstrip("."))
        return found.encode() if found else None

    assert dkim.verify(data, dnsfunc=dns)
