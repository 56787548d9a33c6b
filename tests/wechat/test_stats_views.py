"""One WeChat story: reads, readers and shares are the same numbers in
``newsletter stats``, the console's send page, its CSV and the trends, and an
issue sent only to WeChat is in the trends."""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.devtools.wechat_fake import FakeWeChat
from newsletter.models import Send, utcnow
from newsletter.web.console import services as svc
from newsletter.web.console.auth import Principal
from newsletter.wechat.publisher import publish_send, wechat_send_for
from newsletter.wechat.stats import issue_totals, sync_stats
from tests.wechat.helpers import SAMPLE, add_approved

FakeT = tuple[FakeWeChat, str]


def _second_issue(tmp_path: Path) -> Path:
    folder = tmp_path / "i48"
    folder.mkdir()
    text = SAMPLE.read_text(encoding="utf-8").replace("number: 47", "number: 48", 1)
    (folder / "issue.md").write_text(text, encoding="utf-8")
    shutil.copytree(SAMPLE.parent / "images", folder / "images")
    return folder / "issue.md"


def test_wechat_figures_agree_everywhere(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings, tmp_path: Path
) -> None:
    f, _ = fake
    f.mass_quota = 2
    both = add_approved()
    only_wechat = add_approved(_second_issue(tmp_path))
    with session_scope() as s:
        email = Send(
            publication_id=1,
            issue_id=both,
            channel="email",
            state="finished",
            started_at=utcnow(),
            finished_at=utcnow(),
        )
        s.add(email)
        s.flush()
        email_id = email.id
    for issue in (both, only_wechat):
        f.advance(120)
        assert publish_send(wechat_send_for(issue, settings=wx), settings=wx)["state"] == "done"
    f.advance(days=3)
    sync_stats(today=f.today(), settings=wx)
    want = issue_totals(both)
    assert want["reads"] > want["readers"] > 0 and want["shares"] >= 0
    assert want["reads"] == want["read_count"] and want["readers"] == want["read_user"]

    r = CliRunner().invoke(app, ["stats", str(email_id)])
    assert r.exit_code == 0, r.output
    flat = re.sub(r"\s+", " ", r.output)
    for label, key in (("公众号阅读次数", "reads"), ("公众号阅读人数", "readers")):
        m = re.search(label + r"[^│]*│ ([\d,]+)", flat)
        assert m, r.output
        assert int(m.group(1).replace(",", "")) == want[key]

    page = svc.stats(email_id)
    assert {k: page["wechat"][k] for k in ("reads", "readers", "shares")} == {
        k: want[k] for k in ("reads", "readers", "shares")
    }
    actor = Principal(user_id=1, username="m", display_name="m", role="marketing", via="token")
    rows = dict(
        (row[0], row[1])
        for row in csv.reader(io.StringIO(svc.stats_csv(actor, email_id).decode("utf-8-sig")))
        if len(row) == 2
    )
    assert int(rows["wechat_reads"]) == want["reads"]
    assert int(rows["wechat_readers"]) == want["readers"]
    assert int(rows["wechat_shares"]) == want["shares"]

    trends = svc.trends()
    by_issue = {r["issue"]: r for r in trends}
    assert by_issue[47]["channels"] == "email" and by_issue[47]["wechat_reads"] == want["reads"]
    assert by_issue[48]["channels"] == "wechat"
    assert by_issue[48]["wechat_reads"] == issue_totals(only_wechat)["reads"] > 0
    text = svc.trends_csv(actor).decode("utf-8-sig")
    assert "wechat_reads" in text.splitlines()[0]
    assert sum(1 for line in text.splitlines()[1:] if ",wechat," in line) == 1
