"""Subject tests on a simulated audience, with a real SMTP sink, on SQLite and PostgreSQL.

Human opens come at a known rate per subject; a flood of machine opens (a link
scanner) favours the losing subject.  The winner must be the true one, decided
on human opens only, and every reader gets exactly one message.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from collections import Counter

import pytest
from sqlalchemy import select

from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import StateError
from newsletter.delivery.run import drive_inline
from newsletter.delivery.subjects import HOLD, configure, decide, two_proportion_p
from newsletter.models import Delivery, Send
from newsletter.reports.stats import send_stats
from newsletter.tracking.rollups import ingest
from tests.factories import seed
from tests.tracking.helpers import BROWSER, SCANNER, ev

SUBJECTS = ["本周政策速览", "公共数据授权运营新规出台：企业须知", "第47期周报"]


def _subjects(sink) -> dict[str, str]:  # type: ignore[no-untyped-def]
    out = {}
    for _f, rcpts, data in sink.messages:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        for r in rcpts:
            assert r not in out, f"{r} got two messages"
            out[r] = str(msg["Subject"])
    return out


def _open(rows: list[tuple[int, int]], rate: float, ua: str, tag: str, at: dt.datetime) -> list:  # type: ignore[type-arg]
    n = round(len(rows) * rate)
    return [ev(f"{tag}{did}", "open", did, at, ua=ua) for did, _ in rows[:n]]


def test_the_true_winner_beats_a_machine_flood(any_db: Settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    reset_settings(any_db.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    n = 600
    ids = seed(n)
    with session_scope() as s:
        configure(s, ids["send"], SUBJECTS, share=30, wait_seconds=3600)
    assert drive_inline(ids["send"], max_wait=1) == "sending"  # the remainder is held
    first = _subjects(sink)
    assert len(first) == 180  # 30 % of 600
    with session_scope() as s:
        test_rows = {
            i: list(
                s.execute(
                    select(Delivery.id, Delivery.subscriber_id)
                    .where(
                        Delivery.send_id == ids["send"],
                        Delivery.subject_test.is_(True),
                        Delivery.subject_idx == i,
                    )
                    .order_by(Delivery.id)
                ).all()
            )
            for i in range(3)
        }
        held = s.scalars(
            select(Delivery.next_attempt_at).where(
                Delivery.send_id == ids["send"], Delivery.subject_test.is_(False)
            )
        ).all()
        send = s.get(Send, ids["send"])
        assert send is not None and send.test_decide_at is not None
        decide_at = send.test_decide_at
        sent_at = s.scalar(select(Delivery.sent_at).where(Delivery.state == "sent"))
    assert {len(r) for r in test_rows.values()} == {60}
    assert len(held) == 420 and set(held) == {HOLD}
    # subjects reached the wire, converted for zh-Hant readers
    seen = Counter(first.values())
    assert seen[SUBJECTS[1]] + seen["公共數據授權運營新規出臺：企業須知"] == 60
    human = sent_at + dt.timedelta(minutes=30)
    machine = sent_at + dt.timedelta(seconds=2)
    events = (
        _open(test_rows[0], 0.15, BROWSER, "h", human)
        + _open(test_rows[1], 0.50, BROWSER, "h", human)
        + _open(test_rows[2], 0.10, BROWSER, "h", human)
        + _open(test_rows[2], 1.00, SCANNER, "m", machine)  # the flood favours subject 3
    )
    ingest(events)
    with session_scope() as s:
        assert decide(s, ids["send"], now=decide_at - dt.timedelta(seconds=1)) is None  # not yet
        report = decide(s, ids["send"], now=decide_at)
    assert report is not None
    assert report["winner"] == 1 and report["significant"] is True
    assert report["p_value"] < 0.025  # Bonferroni: alpha / (k - 1)
    v = {x["index"]: x for x in report["variants"]}
    assert v[1]["opens_human"] == 30 and v[2]["opens_machine"] == 60 and v[2]["opens_human"] == 6
    assert drive_inline(ids["send"]) == "finished"
    everyone = _subjects(sink)
    assert len(everyone) == n and len(sink.messages) == n  # exactly one message per reader
    rest = [everyone[r] for r in everyone if r not in first]
    assert set(rest) <= {SUBJECTS[1], "公共數據授權運營新規出臺：企業須知"}
    with session_scope() as s:
        stats = send_stats(s, ids["send"])["subject_test"]
        again = decide(s, ids["send"], now=decide_at, force=True)
    assert again == report  # decided once
    assert [x["subject"] for x in stats["variants"]] == SUBJECTS
    assert stats["variants"][1]["winner"] and stats["variants"][1]["sent"] == 60 + 420
    assert stats["decision"]["p_value"] == report["p_value"]


def test_no_significant_winner_keeps_the_first_subject(any_db: Settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    port, sink = smtp_sink
    reset_settings(any_db.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    ids = seed(40)
    with session_scope() as s:
        configure(s, ids["send"], SUBJECTS[:2], share=50, wait_seconds=60)
    drive_inline(ids["send"], max_wait=1)
    with session_scope() as s:
        rows = {
            i: list(
                s.execute(
                    select(Delivery.id, Delivery.subscriber_id).where(
                        Delivery.send_id == ids["send"], Delivery.subject_idx == i
                    )
                ).all()
            )
            for i in range(2)
        }
        sent_at = s.scalar(select(Delivery.sent_at).where(Delivery.state == "sent"))
    at = sent_at + dt.timedelta(minutes=30)
    ingest(
        _open(rows[0], 0.2, BROWSER, "a", at)
        + _open(rows[1], 0.3, BROWSER, "b", at)
        + _open(rows[0], 1.0, SCANNER, "m", at)
    )
    with session_scope() as s:
        report = decide(s, ids["send"], force=True)
    assert report is not None and report["winner"] == 0 and report["leader"] == 1
    assert report["significant"] is False and "保留第一个主题" in report["note"]
    assert drive_inline(ids["send"]) == "finished"
    got = _subjects(sink)
    assert len(got) == 40 and len(sink.messages) == 40


@pytest.mark.parametrize(
    "subjects,kw",
    [
        (["只有一个"], {}),
        (["a", "b", "c", "d", "e"], {}),
        (["同一个", "同一个"], {}),
        (["a", "  "], {}),
        (["a", "b"], {"share": 0}),
        (["a", "b"], {"share": 90}),
        (["a", "b"], {"metric": "machine"}),
        (["a", "b"], {"wait_seconds": 1}),
    ],
)
def test_bad_configurations_are_one_clear_line(sqlite_settings: Settings, subjects, kw) -> None:  # type: ignore[no-untyped-def]
    ids = seed(1)
    with session_scope() as s, pytest.raises(StateError) as err:
        configure(s, ids["send"], subjects, **kw)
    assert "\n" not in str(err.value) and " / " in str(err.value)


def test_header_injection_in_a_subject_is_stripped(sqlite_settings: Settings) -> None:
    ids = seed(1)
    with session_scope() as s:
        configure(s, ids["send"], ["a\r\nBcc: x@evil.example", "b"])
        send = s.get(Send, ids["send"])
        assert send is not None and send.subject_variants is not None
        assert all("\r" not in x and "\n" not in x for x in send.subject_variants)


def test_two_proportion_p_values() -> None:
    assert two_proportion_p(30, 60, 9, 60) < 0.001
    assert two_proportion_p(10, 100, 10, 100) == pytest.approx(1.0)
    assert 0.034 < two_proportion_p(60, 500, 40, 500) < 0.036  # z = 2.108
    assert two_proportion_p(0, 0, 5, 10) == 1.0


def test_cli_sets_up_decides_and_finishes_a_subject_test(sqlite_settings: Settings) -> None:
    from typer.testing import CliRunner

    from newsletter.cli.main import app

    runner = CliRunner()
    ids = seed(10)
    bad = runner.invoke(app, ["send", "subjects", str(ids["send"]), "只有一个"])
    assert bad.exit_code != 0 and "2 to 4" in bad.output and "Traceback" not in bad.output
    ok = runner.invoke(app, ["send", "subjects", str(ids["send"]), "甲", "乙", "--share", "50"])
    assert ok.exit_code == 0, ok.output
    early = runner.invoke(app, ["send", "decide", str(ids["send"])])
    assert early.exit_code == 1 and "no subject test due" in early.output  # not started yet
    assert drive_inline(ids["send"], max_wait=1) == "sending"
    r = runner.invoke(app, ["send", "decide", str(ids["send"]), "--now"])
    assert r.exit_code == 0, r.output
    assert "无显著差异" in r.output and "winner: [1]" in r.output
    with session_scope() as s:
        states = s.scalars(select(Delivery.state).where(Delivery.send_id == ids["send"])).all()
        assert s.get(Send, ids["send"]).state == "finished"  # type: ignore[union-attr]
    assert states == ["sent"] * 10
