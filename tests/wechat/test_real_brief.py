"""The customer's real brief (Traditional, no images) published to WeChat in each
variant: it gets a cover, and zh-Hans articles are Simplified throughout (text
and labels), zh-Hant keeps mainland vocabulary."""

from __future__ import annotations

import html
import re
from pathlib import Path

import opencc
import pytest

from newsletter.content.decode import decode_source
from newsletter.content.textimport import import_text
from newsletter.core.config import Settings
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.devtools.wechat_fake import FakeWeChat
from newsletter.wechat.publisher import publish_issue
from tests.wechat.helpers import add_approved

REAL = Path(__file__).resolve().parents[1] / "content" / "fixtures" / "real-brief-2021-08-02.txt"
FakeT = tuple[FakeWeChat, str]


def _text_of(content: str) -> str:
    no_urls = re.sub(r"https?://\S+", "", re.sub(r"<[^>]+>", " ", content))
    return html.unescape(no_urls)


@pytest.mark.parametrize("variant", ["zh-Hans", "zh-Hant"])
def test_real_brief_on_wechat(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings, tmp_path: Path, variant: str
) -> None:
    f, _ = fake
    text, _ = decode_source(REAL.read_bytes(), path=str(REAL))
    md = tmp_path / "brief.md"
    md.write_text(import_text(text, front_matter={"number": 31}).markdown, encoding="utf-8")
    out = publish_issue(add_approved(md), settings=wx.model_copy(update={"variant": variant}))
    assert out["state"] == "done", out
    assert len(f.calls("/cgi-bin/material/add_material", ok=True)) == 1  # the default cover
    pushed = [a for p in f.published.values() for a in p["articles"]]
    assert 2 <= len(pushed) <= 8
    body = "".join(_text_of(a["content"]) + a["title"] + a["digest"] for a in pushed)
    if variant == "zh-Hans":
        t2s = opencc.OpenCC("t2s")
        assert t2s.convert(body) == body  # nothing left that t2s would change
        assert "炼接" not in body
        assert "链接" in body or "参考" in body  # Simplified labels too
    else:
        for wrong in ("最佳化", "迴圈", "關于", "甯"):
            assert wrong not in body, wrong
