"""Request bodies are raw UTF-8 whatever the installed httpx; the fake, like WeChat,
keeps ``\\uXXXX`` escapes literally, so an escaped body would show up as garbage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from newsletter.core.config import Settings
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.devtools.wechat_fake import FakeWeChat, decode_body
from newsletter.wechat.client import WeChatClient
from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[2]
OLD_HTTPX = ROOT / ".venv" / "httpx-0.27"
FakeT = tuple[FakeWeChat, str]

CHILD = """
import json, sys
import httpx
from newsletter.core.db import upgrade
from newsletter.wechat.client import WeChatClient
upgrade()  # the token is shared through the database (no Redis here)
with WeChatClient() as c:
    c.call("/cgi-bin/draft/delete", json={"media_id": "草稿-一"}, accept=frozenset({40007}))
# what httpx itself does with json= (the behaviour the client must not depend on)
req = httpx.Request("POST", "http://x/", json={"t": "草稿"})
print(json.dumps({"httpx": httpx.__version__, "httpx_json_body": req.content.decode()}))
"""


def _run_child(tmp_path: Path, url: str, f: FakeWeChat, extra_path: Path | None) -> dict[str, str]:
    env = clean_env()
    paths = [str(extra_path)] if extra_path else []
    env.update(
        PYTHONPATH=os.pathsep.join([*paths, str(ROOT)]),
        NEWSLETTER_VAR_DIR=str(tmp_path / "var"),
        NEWSLETTER_WECHAT_APPID=f.appid,
        NEWSLETTER_WECHAT_SECRET=f.secret,
        NEWSLETTER_WECHAT_BASE_URL=url,
    )
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_bodies_are_raw_utf8_whether_or_not_httpx_escapes_json(
    sqlite_settings: Settings, fake: FakeT, tmp_path: Path
) -> None:
    """Two httpx behaviours, whatever their versions: the installed one (from the lock) and
    the 0.27 copy `make` puts beside it, which escapes non-ASCII in ``json=`` bodies."""
    f, url = fake
    assert (OLD_HTTPX / "httpx").is_dir(), "make installs httpx 0.27 into .venv/httpx-0.27"
    installed = _run_child(tmp_path, url, f, None)
    escaping = _run_child(tmp_path, url, f, OLD_HTTPX)
    # the copy really is another httpx, and really escapes: otherwise this test proves nothing
    assert escaping["httpx"] != installed["httpx"], (escaping["httpx"], installed["httpx"])
    assert "\\u8349" in escaping["httpx_json_body"], escaping
    # the installed one may do either; the client's bodies must not care
    assert installed["httpx_json_body"] in ('{"t":"草稿"}', '{"t": "草稿"}') or (
        "\\u8349" in installed["httpx_json_body"]
    ), installed
    calls = f.calls("/cgi-bin/draft/delete")
    assert len(calls) == 2
    for rec in calls:
        assert "草稿-一".encode() in rec.raw and b"\\u" not in rec.raw
        assert rec.content_type.startswith("application/json")
        assert rec.body == {"media_id": "草稿-一"}


def test_the_fake_keeps_escapes_literally_as_wechat_does(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    f, url = fake
    with WeChatClient(wx) as c:
        token = c.token()
        cover = (ROOT / "examples" / "images" / "cover.png").read_bytes()
        thumb, _ = c.add_material(cover, "cover.png")
    article = {"title": "标题", "content": "<p>中文正文</p>", "thumb_media_id": thumb}
    for ascii_only in (True, False):
        body = json.dumps({"articles": [article]}, ensure_ascii=ascii_only).encode()
        r = httpx.post(
            f"{url}/cgi-bin/draft/add",
            params={"access_token": token},
            content=body,
            headers={"Content-Type": "application/json"},
        )
        draft = f.drafts[r.json()["media_id"]]["articles"][0]
        if ascii_only:  # readers would see the escapes
            assert draft["content"] == "<p>\\u4e2d\\u6587\\u6b63\\u6587</p>"
            assert draft["title"] == "\\u6807\\u9898"
        else:
            assert draft["content"] == "<p>中文正文</p>" and draft["title"] == "标题"


def test_decode_body_keeps_escaped_backslashes() -> None:
    assert decode_body(b'{"a":"\\\\u4e2d"}') == {"a": "\\u4e2d"}  # an escaped backslash
    assert decode_body(b'{"a":"\\u4e2d\\n"}') == {"a": "\\u4e2d\n"}
    assert decode_body('{"a":"中"}'.encode()) == {"a": "中"}
