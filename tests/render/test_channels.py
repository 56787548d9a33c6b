"""Channels render independently: one failing channel never hides the others."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import make_ctx
from render_factory import make_issue

from newsletter.render import render_channels, write_outputs


def test_a_failing_channel_leaves_the_others(tmp_path: Path) -> None:
    issue = make_issue(policy_items=1, news_items=2)
    item = issue.sections[0].items[0]
    item.analysis[0].html = item.analysis[0].text = "很长的一段。" * 4_000  # > one WeChat article
    result = render_channels(issue, make_ctx())
    assert set(result.errors) == {"wechat"} and "a paragraph of item" in result.errors["wechat"]
    assert result.email is not None and result.web is not None and result.wechat is None
    files = {p.name for p in write_outputs(result, tmp_path)}
    assert files == {"email.html", "email.txt", "web.html", "report.json"}
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["channels"]["email"] == {"ok": True}
    assert report["channels"]["web"] == {"ok": True}
    assert report["channels"]["wechat"]["ok"] is False
    assert "wechat" not in report and report["email"]["html_bytes"] > 0
    assert not list(tmp_path.glob(".*.tmp"))


def test_every_channel_reported_when_all_render(tmp_path: Path) -> None:
    result = render_channels(make_issue(), make_ctx())
    assert result.ok
    report = result.report()
    assert report["channels"] == {
        "email": {"ok": True},
        "wechat": {"ok": True},
        "web": {"ok": True},
    }
    assert report["wechat"]["count"] == len(result.wechat or [])
