"""What was approved is what followers get: edits reach WeChat, the approval gate,
a lost submit answer, leases people can see, and kill -9 at every step."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from newsletter.core import clock
from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.core.errors import StateError
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.devtools.wechat_fake import PREVIEW_OPENIDS, FakeWeChat
from newsletter.issues.review import approve
from newsletter.issues.store import create_issue
from newsletter.models import Issue
from newsletter.models.wechat import WeChatArticleStat, WeChatPublication
from newsletter.wechat.cli import wechat_app
from newsletter.wechat.client import WeChatClient
from newsletter.wechat.lease import LeaseHeld
from newsletter.wechat.publisher import (
    preview_issue,
    publish_issue,
    publish_send,
    wechat_send_for,
)
from newsletter.wechat.stats import sync_stats
from tests.conftest import clean_env
from tests.wechat.helpers import SAMPLE

FakeT = tuple[FakeWeChat, str]
ROOT = Path(__file__).resolve().parents[2]
EDIT = "这一句是审核后加入的修改"


def _copy_sample(tmp_path: Path) -> Path:
    """The sample issue with its images, in a folder the test may edit."""
    folder = tmp_path / "issue"
    folder.mkdir()
    (folder / "issue.md").write_text(SAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    images = SAMPLE.parent / "images"
    if images.is_dir():
        shutil.copytree(images, folder / "images")
    return folder / "issue.md"


def _store(path: Path, *, approved: bool = True) -> int:
    with session_scope() as s:
        issue, _ = create_issue(s, path)
        if approved:
            approve(s, issue, "editor@example.org")
        return issue.id


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _pushed_text(f: FakeWeChat) -> str:
    """Everything followers can see: published articles."""
    return "".join(a["content"] for p in f.published.values() for a in p["articles"])


FIRST_SENTENCE = "本周政策发布节奏明显加快。"


def test_preview_edit_publish_pushes_the_edit(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings, tmp_path: Path
) -> None:
    f, _ = fake
    path = _copy_sample(tmp_path)
    issue_id = _store(path)
    first = preview_issue(issue_id, PREVIEW_OPENIDS[0], settings=wx)["draft"]["media_id"]
    _edit(path, FIRST_SENTENCE, FIRST_SENTENCE + EDIT)
    _store(path)  # the edit sends the issue back to review; the editor approves again
    second = preview_issue(issue_id, PREVIEW_OPENIDS[0], settings=wx)["draft"]["media_id"]
    assert second != first
    assert first not in f.drafts and [r.body for r in f.calls("/cgi-bin/draft/delete")] == [
        {"media_id": first}
    ]
    assert EDIT in "".join(a["content"] for a in f.drafts[second]["articles"])
    out = publish_issue(issue_id, settings=wx)
    assert out["state"] == "done" and out["draft"]["media_id"] == second
    assert EDIT in _pushed_text(f)
    mass = next(iter(f.mass_by_id.values()))
    assert mass["media_id"] == second
    assert f.previews == [(PREVIEW_OPENIDS[0], first), (PREVIEW_OPENIDS[0], second)]


def test_rejection_fix_retry_pushes_the_fix(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings, tmp_path: Path
) -> None:
    f, _ = fake
    path = _copy_sample(tmp_path)
    issue_id = _store(path)
    f.publish_final, f.publish_fail_idx = 4, [2]
    out = publish_issue(issue_id, settings=wx)
    assert out["state"] == "failed" and out["publish"]["status"] == 4
    assert f.mass_by_id == {} and f.published == {}
    f.publish_final, f.publish_fail_idx = 0, []
    _edit(path, FIRST_SENTENCE, FIRST_SENTENCE + EDIT)
    _store(path)
    out = publish_issue(issue_id, settings=wx, retry=True)
    assert out["state"] == "done", out
    assert EDIT in _pushed_text(f)
    assert len(f.calls("/cgi-bin/draft/add", ok=True)) == 2
    assert len(f.calls("/cgi-bin/freepublish/submit", ok=True)) == 2  # rejected, then fixed


def test_retry_without_a_fix_is_not_published_again_as_new(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    """--retry with unchanged content re-submits the same draft (the content was approved)."""
    f, _ = fake
    issue_id = _store(SAMPLE)
    f.publish_final = 3
    assert publish_issue(issue_id, settings=wx)["state"] == "failed"
    f.publish_final = 0
    assert publish_issue(issue_id, settings=wx, retry=True)["state"] == "done"
    assert len(f.calls("/cgi-bin/draft/add", ok=True)) == 1


def test_unapproved_issue_is_refused_everywhere(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings, tmp_path: Path
) -> None:
    f, _ = fake
    path = _copy_sample(tmp_path)
    issue_id = _store(path, approved=False)
    with pytest.raises(StateError, match="not approved"):
        publish_issue(issue_id, settings=wx)
    with pytest.raises(StateError, match="not approved"):
        preview_issue(issue_id, PREVIEW_OPENIDS[0], settings=wx)
    r = CliRunner().invoke(wechat_app, ["publish", str(issue_id)])
    assert r.exit_code != 0 and "not approved" in r.output
    assert f.calls("/cgi-bin/draft/add") == [] and f.previews == []
    # approved, then edited: back in review, refused again
    with session_scope() as s:
        approve(s, s.get(Issue, issue_id), "editor@example.org")
    _edit(path, FIRST_SENTENCE, FIRST_SENTENCE + EDIT)
    _store(path, approved=False)
    with pytest.raises(StateError, match="in_review"):
        publish_issue(issue_id, settings=wx)


def test_edit_after_the_submit_is_refused_not_pushed(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings, tmp_path: Path
) -> None:
    f, _ = fake
    f.publish_polls, f.publish_seconds = 10_000, 1e9  # the publish stays in progress
    path = _copy_sample(tmp_path)
    issue_id = _store(path)
    out = publish_issue(issue_id, settings=wx.model_copy(update={"poll_timeout": 0.1}))
    assert out["state"] == "publishing"
    _edit(path, FIRST_SENTENCE, FIRST_SENTENCE + EDIT)
    _store(path)
    with pytest.raises(StateError, match="changed after WeChat took its draft"):
        publish_issue(issue_id, settings=wx)
    assert len(f.calls("/cgi-bin/draft/add", ok=True)) == 1 and f.mass_by_id == {}


def test_submit_timeout_then_rerun_publishes_once(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    issue_id = _store(SAMPLE)
    f.slow["/cgi-bin/freepublish/submit"] = 1.5  # applied by WeChat, answered too late
    fast = wx.model_copy(update={"timeout": 0.5})
    out = publish_issue(issue_id, settings=fast)
    assert out["state"] == "submitting" and out["error"] and "re-run" in out["error"]
    assert len(f.publishes) == 1  # WeChat did take it
    f.slow.clear()
    out = publish_issue(issue_id, settings=wx)
    assert out["state"] == "done", out
    assert len(f.calls("/cgi-bin/freepublish/submit")) == 1 and len(f.publishes) == 1
    assert out["publish"]["status"] == 0 and len(out["publish"]["article_urls"]) == 5
    assert len(f.mass_by_id) == 1
    with session_scope() as s:
        assert s.scalar(select(WeChatPublication.at_risk)) == 0


def test_submit_that_never_reached_wechat_is_resubmitted_and_counted(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    issue_id = _store(SAMPLE)
    send_id = wechat_send_for(issue_id, settings=wx)
    publish_send(send_id, settings=wx, until="drafted")
    with session_scope() as s:  # as if the run died after storing its intent to submit
        s.execute(update(WeChatPublication).values(state="submitting"))
    out = publish_send(send_id, settings=wx)
    assert out["state"] == "done" and len(f.publishes) == 1
    with session_scope() as s:
        assert s.scalar(select(WeChatPublication.at_risk)) == 1


def test_lease_held_is_visible_and_take_over_breaks_a_dead_holder(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    issue_id = _store(SAMPLE)
    send_id = wechat_send_for(issue_id, settings=wx)
    publish_send(send_id, settings=wx, until="drafted")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    holder = f"{socket.gethostname()}:{dead.pid}:deadbeef"
    until = clock.now().replace(tzinfo=None) + dt.timedelta(minutes=15)  # the product's clock
    with session_scope() as s:
        s.execute(update(WeChatPublication).values(lease_owner=holder, lease_until=until))
    with pytest.raises(LeaseHeld) as err:
        publish_send(send_id, settings=wx)
    assert holder in str(err.value) and until.strftime("%Y-%m-%d %H:%M") in str(err.value)
    r = CliRunner().invoke(wechat_app, ["publish", str(issue_id)])
    assert r.exit_code != 0 and holder in r.output and "--take-over" in r.output
    # a live holder on this host is not taken over
    with session_scope() as s:
        live = f"{socket.gethostname()}:{os.getpid()}:cafe"
        s.execute(update(WeChatPublication).values(lease_owner=live))
    with pytest.raises(LeaseHeld, match="still running"):
        publish_send(send_id, settings=wx, take_over=True)
    with session_scope() as s:
        s.execute(update(WeChatPublication).values(lease_owner=holder))
    r = CliRunner().invoke(wechat_app, ["publish", str(issue_id), "--take-over"])
    assert r.exit_code == 0, r.output
    assert len(f.publishes) == 1 and len(f.mass_by_id) == 1
    with session_scope() as s:
        assert s.scalar(select(WeChatPublication.lease_owner)) is None


# -- kill -9 at every step ---------------------------------------------------------------

STEPS = {
    "draft add": "/cgi-bin/draft/add",
    "submit": "/cgi-bin/freepublish/submit",
    "poll": "/cgi-bin/freepublish/get",
    "sendall": "/cgi-bin/message/mass/sendall",
}


def _child_env(settings: Settings, url: str, f: FakeWeChat) -> dict[str, str]:
    env = clean_env()
    env.update(
        NEWSLETTER_VAR_DIR=str(settings.var_dir),
        NEWSLETTER_SECRET_KEY=settings.secret_key.get_secret_value(),
        NEWSLETTER_BASE_URL=settings.base_url,
        NEWSLETTER_WECHAT_APPID=f.appid,
        NEWSLETTER_WECHAT_SECRET=f.secret,
        NEWSLETTER_WECHAT_BASE_URL=url,
        NEWSLETTER_WECHAT_MODE="both",
        NEWSLETTER_WECHAT_POLL_INTERVAL="0.05",
        NEWSLETTER_WECHAT_BACKOFF="0.05",
        PYTHONPATH=str(ROOT),
    )
    return env


def _kill_when_called(cmd: list[str], env: dict[str, str], f: FakeWeChat, path: str) -> None:
    f.hold.add(path)
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not f.calls(path):
            assert child.poll() is None, child.stdout.read() if child.stdout else b""
            assert time.monotonic() < deadline, f"{path} was never called"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)  # WeChat applied the call; its answer is lost
        child.wait(timeout=10)
    finally:
        f.hold.discard(path)
        if child.poll() is None:
            child.kill()


@pytest.mark.e2e
@pytest.mark.parametrize("step", [*STEPS, "stats sync"])
def test_kill_9_at_every_step_then_rerun(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings, step: str
) -> None:
    f, url = fake
    issue_id = _store(SAMPLE)
    env = _child_env(sqlite_settings, url, f)
    publish = [sys.executable, "-m", "newsletter.cli.main", "wechat", "publish", str(issue_id)]
    if step == "poll":
        f.publish_polls, f.publish_seconds = 10_000, 1e9  # still publishing when killed
    if step == "stats sync":
        assert publish_send(wechat_send_for(issue_id, settings=wx), settings=wx)["state"] == (
            "done"
        )
    else:
        _kill_when_called(publish, env, f, STEPS[step])
        if step == "poll":
            f.publish_polls, f.publish_seconds = 0, 2.0
        with session_scope() as s:  # the dead run's lease is still there (20 minutes)
            assert s.scalar(select(WeChatPublication.lease_owner)) is not None
        # the re-run breaks the dead holder's lease; 45066 waits pass on the fake clock
        with WeChatClient(wx, sleep=lambda sec: f.advance(sec + 61)) as client:
            out = publish_send(
                wechat_send_for(issue_id, settings=wx),
                settings=wx,
                client=client,
                take_over=True,
            )
        assert out["state"] == "done", out
    drafts_made = len(f.drafts) + len(f.submitted)
    assert drafts_made == 1 and len(f.publishes) == 1 and len(f.mass_by_id) == 1
    if step == "stats sync":
        # the child syncs by the real date: move the issue three days into the past
        back = dt.timedelta(days=3)
        with session_scope() as s:
            sent = s.scalar(select(WeChatPublication.sent_date))
            assert sent is not None
            past = (dt.date.fromisoformat(sent) - back).isoformat()
            s.execute(update(WeChatPublication).values(sent_date=past))
        for info in f.messages.values():
            info["date"] -= back
        sync = [sys.executable, "-m", "newsletter.cli.main", "wechat", "stats-sync"]
        _kill_when_called(sync, env, f, "/datacube/getarticlesummary")
        sync_stats(settings=wx)
    else:
        f.advance(days=3)
        sync_stats(today=f.today(), settings=wx)
    pushed = {str(m) for m in f.messages}  # every message WeChat counts reads for
    with session_scope() as s:
        synced = set(s.scalars(select(WeChatArticleStat.msg_data_id)).all())
        pub = s.scalars(select(WeChatPublication)).one()
    assert synced == pushed and len(pushed) == 2  # the publish and the push
    assert pub.msg_data_id is not None and pub.msg_data_id in pushed
