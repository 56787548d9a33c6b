"""The per-process compiled message follows what it is made of: a re-render, and the
publication's sender identity changed in the console, apply to the next batch without a
restart of the workers (the cache was keyed on the renditions alone)."""

from __future__ import annotations

import email
import email.policy

from sqlalchemy import update

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.delivery.assemble import Recipient
from newsletter.delivery.compiled import compiled_for
from newsletter.models import Publication, Rendition
from tests.factories import seed

READER = Recipient(1, "a@example.org", "读者", "t", "u")


def _headers(issue_id: int) -> email.message.EmailMessage:
    _mid, raw = compiled_for(issue_id, "zh-Hans").build(READER)
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def _change(issue_id: int, output: str, **values: object) -> None:
    """Rewrite one stored rendition of the issue (as a re-render would)."""
    with session_scope() as s:
        s.execute(
            update(Rendition)
            .where(Rendition.issue_id == issue_id, Rendition.output == output)
            .values(**values)
        )


def test_a_new_sender_applies_to_the_next_build(any_db: Settings) -> None:
    issue_id = seed(1)["issue"]
    first = compiled_for(issue_id, "zh-Hans")
    assert compiled_for(issue_id, "zh-Hans") is first  # cached while nothing changed
    with session_scope() as s:
        s.execute(update(Publication).values(from_address="news@brief.example.cn", name="新名称"))
    msg = _headers(issue_id)
    assert "news@brief.example.cn" in str(msg["From"])
    assert "news@brief.example.cn" not in first.from_addr  # (built anew, not changed)


def test_a_re_render_applies_to_the_next_build(any_db: Settings) -> None:
    issue_id = seed(1)["issue"]
    before = compiled_for(issue_id, "zh-Hans")
    _change(issue_id, "email_text", body=Rendition.body + "\n追加一行", content_hash="changed")
    assert compiled_for(issue_id, "zh-Hans") is not before
    text = _headers(issue_id).get_body(("plain",))
    assert text is not None and "追加一行" in text.get_content()


def test_a_new_subject_alone_applies_to_the_next_build(any_db: Settings) -> None:
    issue_id = seed(1)["issue"]
    before = compiled_for(issue_id, "zh-Hans")
    _change(issue_id, "email_html", subject="第二版标题")
    assert compiled_for(issue_id, "zh-Hans") is not before
    assert str(_headers(issue_id)["Subject"]) == "第二版标题"
