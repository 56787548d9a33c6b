"""The sample issue through the WeChat channel, end to end against the fake server."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.devtools.wechat_fake import PREVIEW_OPENIDS, FakeWeChat
from newsletter.models import Send
from newsletter.models.wechat import WeChatArticleStat, WeChatAsset, WeChatPublication
from newsletter.wechat.client import WeChatClient
from newsletter.wechat.publisher import publish_send, wechat_send_for
from newsletter.wechat.stats import issue_totals, sync_stats
from tests.wechat.helpers import add_approved

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "issue-sample.md"
FakeT = tuple[FakeWeChat, str]


def ok_calls(f: FakeWeChat, path: str) -> int:
    return len(f.calls(path, ok=True))


def assert_within_limits(f: FakeWeChat) -> None:
    assert f.violations() == []
    for r in f.calls("/cgi-bin/draft/add"):
        arts = r.body["articles"]
        assert 1 <= len(arts) <= 8
        for a in arts:
            assert len(a["content"]) < 20_000 and len(a["content"].encode()) < 1_000_000
            assert len(a["title"]) <= 64 and len(a["digest"]) <= 120 and len(a["author"]) <= 8
            assert "wxasset:" not in a["content"]
    for r in f.calls("/cgi-bin/media/uploadimg"):
        assert r.upload is not None and r.upload[1] <= 1_000_000
    assert all(len(r.body["clientmsgid"]) <= 64 for r in f.calls("/cgi-bin/message/mass/sendall"))


def _full_flow(fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    issue_id = add_approved()
    send_id = wechat_send_for(issue_id, settings=wx)
    out = publish_send(send_id, settings=wx)
    assert out["state"] == "done", out
    assert out["send_state"] == "finished"
    assert out["draft"]["articles"] == 5  # headline + sections, split under the limits
    assert len(out["publish"]["article_urls"]) == 5
    assert out["mass_send"]["msg_id"] and out["mass_send"]["status"] == "SEND_SUCCESS"
    assert ok_calls(f, "/cgi-bin/media/uploadimg") == 1  # chart-1.png
    assert ok_calls(f, "/cgi-bin/material/add_material") == 1  # cover
    assert ok_calls(f, "/cgi-bin/draft/add") == 1
    assert ok_calls(f, "/cgi-bin/freepublish/submit") == 1
    assert ok_calls(f, "/cgi-bin/message/mass/sendall") == 1
    assert f.drafts == {}  # a published draft leaves the draft box
    stored = next(iter(f.published.values()))["articles"]
    assert 'src="http://mmbiz.qpic.cn/' in "".join(a["content"] for a in stored)
    # a re-run does nothing
    n = len(f.requests)
    assert publish_send(send_id, settings=wx)["state"] == "done"
    assert len(f.requests) == n
    # statistics, three days later
    f.advance(days=3)
    res = sync_stats(today=f.today(), settings=wx)
    assert res["calls"] == 3 and res["rows"] == 3 * 5 * 2  # days × articles × (publish, mass)
    again = sync_stats(today=f.today(), settings=wx)
    assert again["rows"] == res["rows"]
    with session_scope() as s:
        assert len(s.scalars(select(WeChatArticleStat)).all()) == res["rows"]
    totals = issue_totals(issue_id)
    assert totals["read_count"] > 0 and totals["share_count"] >= 0 and totals["days"] == 3
    assert [a["index"] for a in totals["articles"]] == [1, 2, 3, 4, 5]
    assert_within_limits(f)


def test_sample_issue_end_to_end_sqlite(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    _full_flow(fake, wx)


def test_sample_issue_end_to_end_postgres_redis(
    pg_redis: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    _full_flow(fake, wx)


def test_second_send_of_same_issue_reuses_assets_and_never_pushes_twice(
    send_id: int, issue_id: int, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    assert publish_send(send_id, settings=wx)["state"] == "done"
    f.advance(120)  # past the 45066 window
    with session_scope() as s:
        s.execute(update(Send).where(Send.id == send_id).values(state="cancelled"))
    second = wechat_send_for(issue_id, settings=wx)
    assert second != send_id
    out = publish_send(second, settings=wx)
    assert out["state"] == "done"
    assert ok_calls(f, "/cgi-bin/media/uploadimg") == 1
    assert ok_calls(f, "/cgi-bin/material/add_material") == 1
    assert len(f.mass_by_id) == 1  # 45065: recorded as success, not pushed again
    assert len(f.calls("/cgi-bin/message/mass/sendall")) == 2
    with session_scope() as s:
        assert len(s.scalars(select(WeChatAsset)).all()) == 2


def test_token_expires_mid_flow(send_id: int, fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    out = publish_send(
        send_id,
        settings=wx,
        on_step=lambda st: f.expire_tokens() if st in ("assets", "drafted") else None,
    )
    assert out["state"] == "done"
    assert sum(r.errcode == 42001 for r in f.requests) == 2
    assert len(f.calls("/cgi-bin/stable_token", ok=True)) == 3  # first + one refresh each time


def test_busy_then_recovers(send_id: int, fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    f.busy(3)
    assert publish_send(send_id, settings=wx)["state"] == "done"
    assert sum(r.errcode == -1 for r in f.requests) == 3


def test_busy_for_too_long_stays_resumable(send_id: int, fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    publish_send(send_id, settings=wx, until="drafted")
    f.busy(1000, {"/cgi-bin/freepublish/submit"})
    out = publish_send(send_id, settings=wx)
    assert out["state"] != "failed" and out["errcode"] == -1 and "busy" in out["error"]
    f.busy(0)
    assert publish_send(send_id, settings=wx)["state"] == "done"
    assert ok_calls(f, "/cgi-bin/draft/add") == 1


def test_mass_send_quota_exhausted_fails_wechat_only(
    send_id: int, issue_id: int, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    with session_scope() as s:
        email = Send(publication_id=1, issue_id=issue_id, channel="email", state="sending")
        s.add(email)
        s.flush()
        email_id = email.id
    f.mass_quota = 0
    out = publish_send(send_id, settings=wx)
    assert out["state"] == "failed" and out["failed_step"] == "mass_sending"
    assert out["errcode"] == 45028 and "quota" in out["error"]
    assert out["send_state"] == "failed"
    with session_scope() as s:
        assert s.get(Send, email_id).state == "sending"  # email untouched
    assert publish_send(send_id, settings=wx)["state"] == "failed"  # left alone without retry
    f.mass_quota = 1
    out = publish_send(send_id, settings=wx, retry=True)
    assert out["state"] == "done" and out["send_state"] == "finished"
    assert len(f.mass_by_id) == 1 and ok_calls(f, "/cgi-bin/freepublish/submit") == 1


def test_publish_fails_with_status_3(send_id: int, fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    f.publish_final, f.publish_fail_idx = 3, [2]
    out = publish_send(send_id, settings=wx)
    assert out["state"] == "failed" and out["publish"]["status"] == 3
    assert out["failed_articles"][0]["index"] == 2
    assert out["failed_articles"][0]["title"].startswith("一、政策法规")
    assert "#2" in out["error"] and "status 3" in out["error"]
    assert f.mass_by_id == {}  # mode both: no push after a failed publish
    f.publish_final, f.publish_fail_idx = 0, []
    out = publish_send(send_id, settings=wx, retry=True)
    assert out["state"] == "done" and ok_calls(f, "/cgi-bin/draft/add") == 1


class Crash(Exception):
    pass


def _crash_at(state: str):  # type: ignore[no-untyped-def]
    def hook(st: str) -> None:
        if st == state:
            raise Crash(st)

    return hook


def test_crash_between_draft_and_publish(send_id: int, fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    with pytest.raises(Crash):
        publish_send(send_id, settings=wx, on_step=_crash_at("drafted"))
    out = publish_send(send_id, settings=wx)
    assert out["state"] == "done"
    assert ok_calls(f, "/cgi-bin/draft/add") == 1 and len(f.drafts) + len(f.submitted) == 1
    assert ok_calls(f, "/cgi-bin/message/mass/sendall") == 1 and len(f.mass_by_id) == 1


def test_crash_before_draft_id_was_stored_finds_the_draft(
    send_id: int, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    with pytest.raises(Crash):
        publish_send(send_id, settings=wx, on_step=_crash_at("drafted"))
    with session_scope() as s:  # as if the process died before committing the media_id
        s.execute(update(WeChatPublication).values(state="drafting", draft_media_id=None))
    assert publish_send(send_id, settings=wx)["state"] == "done"
    assert ok_calls(f, "/cgi-bin/draft/add") == 1 and len(f.drafts) + len(f.submitted) == 1


def test_crash_after_mass_send_before_commit_never_pushes_twice(
    send_id: int, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    assert publish_send(send_id, settings=wx)["state"] == "done"
    msg_id = next(iter(f.mass_by_id))
    with session_scope() as s:
        s.execute(update(WeChatPublication).values(state="mass_sending", msg_id=None))
    with WeChatClient(wx, sleep=lambda sec: f.advance(sec + 60)) as client:
        out = publish_send(send_id, settings=wx, client=client)
    assert out["state"] == "done" and out["mass_send"]["msg_id"] == str(msg_id)
    codes = [r.errcode for r in f.calls("/cgi-bin/message/mass/sendall")]
    assert codes == [0, 45066, 45065] and len(f.mass_by_id) == 1


def test_preview_then_publish_uses_one_draft(
    issue_id: int, fake: FakeT, wx: WeChatSettings
) -> None:
    from newsletter.wechat.publisher import preview_issue, publish_issue

    f, _ = fake
    out = preview_issue(issue_id, PREVIEW_OPENIDS[0], settings=wx)
    assert out["state"] == "drafted" and out["send_state"] == "draft"
    assert f.previews == [(PREVIEW_OPENIDS[0], out["draft"]["media_id"])]
    assert publish_issue(issue_id, settings=wx)["state"] == "done"
    assert ok_calls(f, "/cgi-bin/draft/add") == 1


def test_ip_not_allowed_is_reported(send_id: int, fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    f.ip_blocked = True
    out = publish_send(send_id, settings=wx)
    assert out["state"] == "failed" and out["errcode"] == 40164
    assert "IP allow-list" in out["error"]
