"""``newsletter wechat …`` through Typer's runner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from newsletter.core.wechat_settings import WeChatSettings
from newsletter.devtools.wechat_fake import PREVIEW_OPENIDS, FakeWeChat
from newsletter.wechat.cli import wechat_app

FakeT = tuple[FakeWeChat, str]
runner = CliRunner()


def test_help() -> None:
    for cmd in ("check", "preview", "publish", "status", "stats-sync"):
        r = runner.invoke(wechat_app, [cmd, "--help"])
        assert r.exit_code == 0, r.output


def test_commands(issue_id: int, fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    r = runner.invoke(wechat_app, ["check", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["mass_send_quota"]["remain"] == 1
    r = runner.invoke(wechat_app, ["status", "#47"])
    assert r.exit_code == 2  # no wechat send yet
    r = runner.invoke(wechat_app, ["preview", "#47", "--openid", PREVIEW_OPENIDS[0]])
    assert r.exit_code == 0, r.output
    r = runner.invoke(wechat_app, ["publish", "#47", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["state"] == "done"
    r = runner.invoke(wechat_app, ["status", "#47"])
    assert r.exit_code == 0 and "done" in r.stdout
    f.advance(days=2)
    import newsletter.wechat.stats as stats

    orig = stats.sync_stats
    stats.sync_stats = lambda **kw: orig(today=f.today(), **kw)  # type: ignore[assignment]
    try:
        r = runner.invoke(wechat_app, ["stats-sync", "--json"])
    finally:
        stats.sync_stats = orig
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"] == 2 * 5 * 2
    f.ip_blocked = True
    r = runner.invoke(wechat_app, ["check"])
    assert r.exit_code == 2 and "IP" in r.output


def test_demo_helper(issue_id: int) -> None:
    from newsletter.devtools.wechat_demo import demo_publish

    out = demo_publish(issue_id)
    assert out["status"]["state"] == "done" and out["violations"] == 0
    assert out["totals"]["read_count"] > 0


def test_publish_that_stops_short_exits_75_then_0(
    issue_id: int, fake: FakeT, wx: WeChatSettings
) -> None:
    """A run WeChat stopped (45009, resumable) did not reach its goal: exit 75, not 0, so
    cron sees nothing was published; the re-run finishes and exits 0."""
    f, _ = fake
    f.fail_next["/cgi-bin/freepublish/submit"] = 45009
    r = runner.invoke(wechat_app, ["publish", "#47", "--json"])
    assert r.exit_code == 75, r.output
    assert json.loads(r.stdout)["state"] != "done"
    assert f.published == {}
    r = runner.invoke(wechat_app, ["publish", "#47", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["state"] == "done" and len(f.published) == 1
