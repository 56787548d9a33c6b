"""The welcome series on the production stack (issue 32): a real beat and a real worker
(PostgreSQL, Redis, Celery) and an SMTP server.

A reader confirms through the real opt-in; the worker's tick sends step 1 at once. The
product clock of the worker is then moved two days on (``NEWSLETTER_CLOCK_OFFSET``, the
clock module's own switch for a process tree) and step 2 arrives. The reader
unsubscribes with the one-click link of that message; with the clock a week on, a
second reader who stayed gets step 3, and the first gets nothing more.
"""

from __future__ import annotations

import email
import email.policy
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from newsletter.audience.optin import confirm, request_subscription
from newsletter.core.db import session_scope
from newsletter.delivery import welcome
from newsletter.web.app import create_app
from tests.e2e.procs import env_for, stack_settings, start_beat, start_worker, stop, wait_for
from tests.factories import seed

pytestmark = pytest.mark.e2e  # real worker and beat processes

STEPS = [
    ("---\ntitle: 欢迎之一\n---\n\n感谢订阅政策周报。\n", "立即"),
    ("---\ntitle: 欢迎之二\n---\n\n两天后的第二封。\n", "2 天后"),
    ("---\ntitle: 欢迎之三\n---\n\n一周后的第三封。\n", "6 天后"),
]


def _subjects(sink, rcpt: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        str(email.message_from_bytes(d, policy=email.policy.default)["Subject"])
        for _f, rs, d in sink.messages
        if rcpt in rs
    ]


def _message(sink, rcpt: str, subject: str):  # type: ignore[no-untyped-def]
    for _f, rs, d in sink.messages:
        msg = email.message_from_bytes(d, policy=email.policy.default)
        if rcpt in rs and str(msg["Subject"]) == subject:
            return msg
    raise AssertionError(f"no {subject} to {rcpt}")


def _join(addr: str, list_id: int) -> None:
    res = request_subscription(addr, list_id)
    assert res.outcome == "sent" and res.mail is not None
    confirm(res.mail[2])


def test_confirm_step_one_at_once_step_two_after_the_delay_nothing_after_unsubscribing(
    pg_settings, redis_url, smtp_sink, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    cfg = stack_settings(pg_settings, redis_url, port)
    ids = seed(2)  # readers from before the series: never welcomed
    with session_scope() as s:
        for source, delay in STEPS:
            welcome.add_step(s, ids["list"], source, delay, "editor@example.org")
    _join("leaver@example.com", ids["list"])
    _join("stayer@example.com", ids["list"])
    (tmp_path / "beat").mkdir()
    beat = start_beat(env_for(cfg, tmp_path), tmp_path / "beat")
    worker = start_worker(cfg, env_for(cfg, tmp_path))
    try:
        wait_for(lambda: _subjects(sink, "stayer@example.com") and
                 _subjects(sink, "leaver@example.com"), timeout=90,
                 what="step 1 to both new readers")  # fmt: skip
        assert _subjects(sink, "leaver@example.com") == ["欢迎之一"]
        stop(worker)
        # Two days on, for the worker (which runs the tick): step 2 is due.
        worker = start_worker(cfg, env_for(cfg, tmp_path, NEWSLETTER_CLOCK_OFFSET="172860"))
        wait_for(lambda: len(_subjects(sink, "leaver@example.com")) == 2 and
                 len(_subjects(sink, "stayer@example.com")) == 2, timeout=90,
                 what="step 2 after the simulated two days")  # fmt: skip
        assert _subjects(sink, "leaver@example.com") == ["欢迎之一", "欢迎之二"]
        # The reader leaves with the one-click link (RFC 8058) of step 2.
        msg = _message(sink, "leaver@example.com", "欢迎之二")
        https = next(u.strip(" <>") for u in str(msg["List-Unsubscribe"]).split(",")
                     if "https://" in u)  # fmt: skip
        with TestClient(create_app(), base_url="https://news.example.org") as web:
            r = web.post(urlsplit(https).path, data={"List-Unsubscribe": "One-Click"})
        assert r.status_code in (200, 202), r.text[:200]
        stop(worker)
        worker = start_worker(cfg, env_for(cfg, tmp_path, NEWSLETTER_CLOCK_OFFSET="7d"))
        wait_for(lambda: len(_subjects(sink, "stayer@example.com")) == 3, timeout=90,
                 what="step 3 to the reader who stayed")  # fmt: skip
    finally:
        stop(worker, beat)
    assert _subjects(sink, "stayer@example.com") == ["欢迎之一", "欢迎之二", "欢迎之三"]
    assert _subjects(sink, "leaver@example.com") == ["欢迎之一", "欢迎之二"]
    rcpts = {r for _f, rs, _d in sink.messages for r in rs}
    assert rcpts == {"leaver@example.com", "stayer@example.com"}  # the old readers: nothing
