"""Test sends: the real message, real headers, nothing in the ledger or the stats."""

from __future__ import annotations

import email
import email.policy

from sqlalchemy import func, select
from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.issues.store import create_issue
from newsletter.models import Delivery, Event, Issue
from tests.conftest import EXAMPLES


def test_test_send_both_variants_outside_the_ledger(sqlite_settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    reset_settings(sqlite_settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    with session_scope() as s:
        create_issue(s, EXAMPLES / "issue-sample.md")
    r = CliRunner().invoke(
        app, ["send", "test", "#47", "--to", "Editor@Example.org", "--variant", "both", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert len(sink.messages) == 2
    subjects = set()
    for _f, rcpts, data in sink.messages:
        assert rcpts == ["editor@example.org"]
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["X-Newsletter-Test"] == "yes"
        subjects.add(str(msg["Subject"]))
        body = msg.get_body(("html",))
        assert body is not None and "%%" not in body.get_content()
    assert len(subjects) == 2  # zh-Hans and zh-Hant subjects differ
    assert all(s.startswith("[测试] ") for s in subjects), subjects  # says it is a test
    # The compiled message real sends use keeps the issue's own subject.
    from newsletter.delivery.assemble import Recipient
    from newsletter.delivery.compiled import compiled_for

    with session_scope() as s:
        issue_id = s.scalar(select(func.min(Issue.id)))
    assert issue_id is not None
    _mid, real = compiled_for(issue_id, "zh-Hans").build(
        Recipient(0, "a@example.org", "", "t", "u")
    )
    real_subject = str(email.message_from_bytes(real, policy=email.policy.default)["Subject"])
    assert real_subject and "[测试]" not in real_subject and "[测试] " + real_subject in subjects
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0
        assert s.scalar(select(func.count()).select_from(Event)) == 0


def test_test_send_to_a_bad_address_is_refused(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        create_issue(s, EXAMPLES / "issue-sample.md")
    r = CliRunner().invoke(app, ["send", "test", "#47", "--to", "not an address"])
    assert r.exit_code == 2 and "whitespace" in r.output
