"""Sealed issues (issue 29): what was approved is what goes out.

After approval the issue's folder may change in any way (an image overwritten, the cover
replaced, another file renamed to an approved name): WeChat and e-mail carry the approved
bytes or nothing. A re-upload that differs in any asset is a new version and goes back to
review. A blob edited in the store refuses, in one line, with an alert.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select, update

from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import SealError, StateError
from newsletter.core.wechat_settings import WeChatSettings, reset_wechat_settings
from newsletter.delivery.run import drive_inline
from newsletter.delivery.testsend import send_test
from newsletter.devtools.sink import SinkHandler
from newsletter.devtools.wechat_fake import FakeWeChat, run_fake
from newsletter.issues.review import approve
from newsletter.issues.seal import blob_path
from newsletter.issues.store import create_issue
from newsletter.models import AuditLog, Issue, IssueSeal, Publication, Send
from newsletter.web.app import create_app
from newsletter.wechat.access_token import clear_local_tokens
from newsletter.wechat.publisher import publish_issue
from tests.conftest import EXAMPLES
from tests.factories import draft_send_to_one_reader

FakeT = tuple[FakeWeChat, str]
AUTHOR, EDITOR, OTHER = "author@example.org", "editor@example.org", "chief@example.org"
_MEDIA = re.compile(r"/media/([0-9a-f]{64})")


def png(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture
def brief(tmp_path: Path) -> Path:
    """The sample issue in a folder of its own (chart-1.png in the body, cover.png)."""
    d = tmp_path / "brief"
    d.mkdir()
    shutil.copy(EXAMPLES / "issue-sample.md", d / "issue.md")
    shutil.copytree(EXAMPLES / "images", d / "images")
    return d / "issue.md"


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length", "0"))
            received.append(json.loads(self.rfile.read(n)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


@pytest.fixture
def env(
    pg_settings: Settings,
    smtp_sink: tuple[int, SinkHandler],
    webhook: tuple[str, list[dict[str, object]]],
) -> Iterator[tuple[SinkHandler, list[dict[str, object]]]]:
    """PostgreSQL, a real SMTP sink as the relay, alerts to a local webhook."""
    port, sink = smtp_sink
    reset_settings(pg_settings.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": port, "alert_webhook_url": webhook[0],
    }))  # fmt: skip
    yield sink, webhook[1]


@pytest.fixture
def wx() -> Iterator[tuple[FakeWeChat, WeChatSettings]]:
    with run_fake(FakeWeChat()) as (f, url):
        s = WeChatSettings(
            appid=f.appid, secret=f.secret, base_url=url, mode="both", backoff=0.01,
            poll_interval=0.01, poll_timeout=5, too_fast_wait=0.01, token="callback-token-1",
        )  # type: ignore[arg-type]  # fmt: skip
        reset_wechat_settings(s)
        clear_local_tokens()
        yield f, s
        reset_wechat_settings(None)
        clear_local_tokens()


def add_and_approve(path: Path) -> int:
    with session_scope() as s:
        issue, _ = create_issue(s, path, actor=AUTHOR)
        approve(s, issue, EDITOR)
        return issue.id


def sealed_assets(issue_id: int) -> dict[str, str]:
    """kind:path → SHA-256 of the issue's current sealed version."""
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None and issue.sealed_version is not None
        row = s.scalar(select(IssueSeal).where(
            IssueSeal.issue_id == issue_id, IssueSeal.version == issue.sealed_version))  # fmt: skip
        assert row is not None
        return {f"{a['kind']}:{a['ref']}": a["sha256"] for a in row.assets}


def wechat_image_bytes(f: FakeWeChat) -> list[bytes]:
    """The bytes of every picture the published articles show (body images and covers)."""
    out: list[bytes] = []
    for pub in f.published.values():
        for art in pub["articles"]:
            out += [f.images[u] for u in re.findall(r'src="([^"]+)"', art["content"])]
            out.append(f.images[f.materials[art["thumb_media_id"]]])
    return out


def swap(folder: Path, kind: str) -> list[bytes]:
    """Change the issue's folder after approval; returns the bytes that must never go out."""
    images = folder / "images"
    new_chart, new_cover = png((250, 0, 0)), png((0, 0, 250), (300, 200))
    if kind == "body-image":
        (images / "chart-1.png").write_bytes(new_chart)
        return [new_chart]
    if kind == "cover":
        (images / "cover.png").write_bytes(new_cover)
        return [new_cover]
    if kind == "renamed":  # other files renamed to the approved names
        (images / "chart-2.png").write_bytes(new_chart)
        os.replace(images / "chart-2.png", images / "chart-1.png")
        (images / "cover-old.png").write_bytes(new_cover)
        os.replace(images / "cover-old.png", images / "cover.png")
        return [new_chart, new_cover]
    raise AssertionError(kind)


# -- what goes out after a swap ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["body-image", "cover", "renamed"])
def test_assets_swapped_after_approval_never_go_out(
    env: tuple[SinkHandler, list[dict[str, object]]],
    wx: tuple[FakeWeChat, WeChatSettings],
    brief: Path,
    kind: str,
) -> None:
    sink, _alerts = env
    f, settings = wx
    approved = {
        sha(b): b for b in (
            (brief.parent / "images" / "chart-1.png").read_bytes(),
            (brief.parent / "images" / "cover.png").read_bytes(),
        )
    }  # fmt: skip
    issue_id = add_and_approve(brief)
    assert set(sealed_assets(issue_id).values()) == set(approved)
    forbidden = swap(brief.parent, kind)
    assert all(sha(b) not in approved for b in forbidden)

    # WeChat: draft and publish carry the approved bytes, the cover included
    out = publish_issue(issue_id, settings=settings)
    assert out["state"] == "done", out
    shown = wechat_image_bytes(f)
    assert {sha(b) for b in shown} == set(approved)
    assert not any(b in f.images.values() for b in forbidden)  # never even uploaded

    # E-mail: a test send and a real send point at the approved images only
    assert [r["state"] for r in send_test(str(issue_id), ["editor@example.org"])] == ["sent"]
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None
        send_id = draft_send_to_one_reader(s, issue).id
    assert drive_inline(send_id) == "finished"
    assert len(sink.messages) == 2
    referenced: set[str] = set()
    for _f, _rcpts, data in sink.messages:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        html = msg.get_body(("html",))
        assert html is not None
        found = set(_MEDIA.findall(html.get_content()))
        assert found and found <= set(approved), found
        referenced |= found
    # ...and what a reader's mail client fetches there is the approved picture
    with TestClient(create_app(), base_url="https://testserver") as web:
        for digest in referenced:
            r = web.get(f"/media/{digest}")
            assert r.status_code == 200 and r.content == approved[digest]
        for b in forbidden:
            assert web.get(f"/media/{sha(b)}").status_code == 404
    with session_scope() as s:  # the swap alone changes nothing: still approved, version 1
        issue = s.get(Issue, issue_id)
        assert issue is not None and issue.status == "sent" and issue.sealed_version == 1


# -- a re-upload is a new version ----------------------------------------------------------


def test_reupload_of_same_source_with_a_changed_image_goes_back_to_review(
    env: tuple[SinkHandler, list[dict[str, object]]], brief: Path, tmp_path: Path
) -> None:
    issue_id = add_and_approve(brief)
    first = sealed_assets(issue_id)
    # the identical source and images again, from another folder: the same version
    again = tmp_path / "again"
    shutil.copytree(brief.parent, again)
    with session_scope() as s:
        issue, _ = create_issue(s, again / "issue.md", actor=AUTHOR)
        assert (issue.status, issue.sealed_version) == ("approved", 1)
    # the identical source with one image changed: a new version, back to review
    (again / "images" / "chart-1.png").write_bytes(png((10, 200, 10)))
    with session_scope() as s:
        issue, _ = create_issue(s, again / "issue.md", actor=AUTHOR)
        assert (issue.status, issue.sealed_version, issue.approved_by) == ("in_review", None, None)
    with session_scope() as s, pytest.raises(StateError, match="four-eyes"):
        issue = s.get(Issue, issue_id)
        assert issue is not None
        approve(s, issue, AUTHOR)  # four-eyes again: the uploader cannot approve it
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None
        approve(s, issue, OTHER)
        assert issue.sealed_version == 2
        reopened = s.scalar(select(func.count()).where(AuditLog.action == "issue.reopen"))
    second = sealed_assets(issue_id)
    assert second["cover:images/cover.png"] == first["cover:images/cover.png"]
    assert second["image:images/chart-1.png"] == sha(png((10, 200, 10)))
    assert reopened == 1


def test_an_asset_change_of_a_scheduled_issue_is_refused(
    env: tuple[SinkHandler, list[dict[str, object]]], brief: Path
) -> None:
    issue_id = add_and_approve(brief)
    with session_scope() as s:
        s.execute(update(Issue).where(Issue.id == issue_id).values(status="scheduled"))
    (brief.parent / "images" / "cover.png").write_bytes(png((1, 2, 3)))
    with session_scope() as s, pytest.raises(StateError, match="第47期已排期"):
        create_issue(s, brief, actor=AUTHOR)


def test_the_console_reupload_with_a_different_image_goes_back_to_review(
    env: tuple[SinkHandler, list[dict[str, object]]],
) -> None:
    """The reported path: the same source uploaded again with another chart answered 201
    and stayed approved."""
    from newsletter.web.console.auth import Principal
    from newsletter.web.console.services.issues import load_issue_row, upload_issue

    ops = Principal(user_id=0, username=AUTHOR, display_name="作者", role="ops", via="session")
    source = (EXAMPLES / "issue-sample.md").read_bytes()
    images = [("chart-1.png", (EXAMPLES / "images" / "chart-1.png").read_bytes()),
              ("cover.png", (EXAMPLES / "images" / "cover.png").read_bytes())]  # fmt: skip
    out = upload_issue(ops, "issue.md", source, images)
    with session_scope() as s:
        issue = s.get(Issue, out["id"])
        assert issue is not None
        approve(s, issue, EDITOR)
    row = load_issue_row(out["id"])
    assert row["status"] == "approved" and row["seal"]["version"] == 1
    assert row["seal"]["sealed_by"] == EDITOR and len(row["seal"]["digest"]) == 64
    again = upload_issue(ops, "issue.md", source, [("chart-1.png", png((9, 9, 9))), images[1]])
    assert again["id"] == out["id"] and again["status"] == "in_review"
    assert load_issue_row(out["id"])["seal"] is None


# -- a tampered blob ------------------------------------------------------------------------


def test_a_blob_edited_on_disk_refuses_every_use_with_one_line_and_an_alert(
    env: tuple[SinkHandler, list[dict[str, object]]],
    wx: tuple[FakeWeChat, WeChatSettings],
    brief: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from newsletter.cli.errors import run
    from newsletter.cli.main import app

    sink, alerts = env
    f, _settings = wx
    issue_id = add_and_approve(brief)
    chart = sealed_assets(issue_id)["image:images/chart-1.png"]
    approved = blob_path(chart).read_bytes()
    blob_path(chart).write_bytes(png((255, 0, 255)))  # edited in the store

    # WeChat, through the real command: one line, Chinese first, exit 2, nothing uploaded
    capsys.readouterr()
    assert run(app, ["wechat", "publish", "#47"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    line = err.removeprefix("错误：")
    assert (
        re.match(r"[\u4e00-\u9fff]", line)
        and "[seal-broken]" in line
        and "images/chart-1.png" in line
    )
    assert f.calls("/cgi-bin/media/uploadimg") == [] and f.calls("/cgi-bin/draft/add") == []
    assert f.calls("/cgi-bin/material/add_material") == []

    # e-mail: the test send and a real send refuse; nothing reaches the relay
    with pytest.raises(SealError) as exc:
        send_test(str(issue_id), ["editor@example.org"])
    assert exc.value.code == "seal-broken"
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None
        send_id = draft_send_to_one_reader(s, issue).id
    with pytest.raises(SealError):
        drive_inline(send_id)
    assert sink.messages == []
    with session_scope() as s:
        assert s.get(Send, send_id).state == "failed"  # type: ignore[union-attr]
        banners = s.scalars(select(AuditLog.target).where(
            AuditLog.action == "notify.seal_broken")).all()  # fmt: skip
    # the archive page is not served from a broken seal; the picture stays the approved one
    with session_scope() as s:
        slug = s.scalar(select(Publication.slug))
    with TestClient(create_app(), base_url="https://testserver") as web:
        assert web.get(f"/archive/{slug}/47").status_code == 404
        r = web.get(f"/media/{chart}")
        assert r.status_code == 404 or r.content == approved
    # one alert per broken blob, however often it was refused (webhook and console banner)
    assert banners == [f"issue:{issue_id}:seal:1:{chart}"]
    seal_alerts = [a for a in alerts if a.get("event") == "seal_broken"]
    assert len(seal_alerts) == 1 and "images/chart-1.png" in str(seal_alerts[0]["body"])


def test_a_stored_source_edited_in_the_database_breaks_the_seal(
    env: tuple[SinkHandler, list[dict[str, object]]], brief: Path
) -> None:
    issue_id = add_and_approve(brief)
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None
        s.execute(update(Issue).where(Issue.id == issue_id)
                  .values(source_text=issue.source_text.replace("国务院办公厅", "国务院", 1)))  # fmt: skip
    with pytest.raises(SealError) as exc:
        send_test(str(issue_id), ["editor@example.org"])
    assert exc.value.code == "seal-broken" and "源文件" in str(exc.value)


def test_an_issue_approved_before_sealing_is_refused_until_approved_again(
    env: tuple[SinkHandler, list[dict[str, object]]], brief: Path
) -> None:
    sink, _ = env
    with session_scope() as s:
        issue, _ = create_issue(s, brief, actor=AUTHOR)
        issue.status = "approved"  # as an approval before migration 0016 left it
        issue_id = issue.id
    with pytest.raises(SealError) as exc:
        send_test(str(issue_id), ["editor@example.org"])
    assert exc.value.code == "seal-missing" and str(exc.value).startswith("第47期")
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        assert issue is not None
        approve(s, issue, EDITOR)
        assert (issue.status, issue.sealed_version) == ("approved", 1)
    assert [r["state"] for r in send_test(str(issue_id), ["editor@example.org"])] == ["sent"]
    assert len(sink.messages) == 1
