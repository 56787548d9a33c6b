"""The client and the fake: tokens, limits, error messages, secrets kept out of logs."""

from __future__ import annotations

import logging
import threading

import pytest
from pydantic import SecretStr

from newsletter.core.config import Settings
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.devtools.wechat_fake import FakeWeChat
from newsletter.wechat.client import WeChatClient
from newsletter.wechat.errors import (
    WeChatAccountError,
    WeChatAuthError,
    WeChatContentError,
    WeChatError,
    WeChatMediaError,
)
from newsletter.wechat.publisher import publish_send

FakeT = tuple[FakeWeChat, str]
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 100


def _article(client: WeChatClient, **kw: object) -> dict[str, object]:
    media_id, _ = client.add_material(PNG, "c.png")
    return {
        "title": "标题",
        "author": "作者",
        "digest": "摘要",
        "content": "<p>正文</p>",
        "content_source_url": "https://news.example.org/a",
        "thumb_media_id": media_id,
        "need_open_comment": 0,
        "only_fans_can_comment": 0,
        **kw,
    }


def test_one_token_shared_by_threads(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    clients = [WeChatClient(wx) for _ in range(8)]
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda c=c: tokens.append(c.token())) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1 and len(f.calls("/cgi-bin/stable_token")) == 1


def test_token_shared_through_redis(pg_redis: Settings, fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    a, b = WeChatClient(wx), WeChatClient(wx)
    assert a.token() == b.token()
    assert a.tokens._redis is not None and len(f.calls("/cgi-bin/stable_token")) == 1
    f.expire_tokens()
    a.quota("/cgi-bin/message/mass/sendall")  # 42001 → one refresh
    b.quota("/cgi-bin/message/mass/sendall")  # uses the refreshed token
    assert len(f.calls("/cgi-bin/stable_token")) == 2


def test_plain_token_overlap_of_five_minutes(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    plain = wx.model_copy(update={"token_endpoint": "plain"})
    c = WeChatClient(plain)
    old = c.token()
    c.tokens.drop()
    new = c.token()
    assert new != old
    assert f._check_token({"access_token": old}) is None  # still valid for 5 minutes
    f.advance(301)
    assert f._check_token({"access_token": old})["errcode"] == 40001
    assert f._check_token({"access_token": new}) is None
    assert f._check_token({})["errcode"] == 41001
    assert f._check_token({"access_token": "nope"})["errcode"] == 40014


def test_stable_token_repeats_until_forced(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    c = WeChatClient(wx)
    a = c._fetch_token(False)[0]
    assert c._fetch_token(False)[0] == a
    assert c._fetch_token(True)[0] != a


def test_limits_are_enforced_and_mapped(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    c = WeChatClient(wx)
    with pytest.raises(WeChatContentError, match="45002"):
        c.draft_add([_article(c, content="<p>" + "字" * 19_995 + "</p>")])
    with pytest.raises(WeChatContentError, match="45003"):
        c.draft_add([_article(c, title="题" * 65)])
    with pytest.raises(WeChatContentError, match="45004"):
        c.draft_add([_article(c, digest="摘" * 121)])
    with pytest.raises(WeChatError, match="45008"):
        c.draft_add([_article(c)] * 9)
    with pytest.raises(WeChatMediaError, match="40007"):
        c.draft_add([_article(c, thumb_media_id="gone")])
    with pytest.raises(WeChatMediaError, match="40009"):
        c.upload_image(PNG + b"\0" * 1_000_000, "big.png")
    with pytest.raises(WeChatMediaError, match="40005"):
        c.upload_image(b"GIF89a", "x.gif")
    with pytest.raises(WeChatError, match="61501"):
        c.datacube("getuserread", "2026-11-01", "2026-11-04")  # span 3
    with pytest.raises(WeChatContentError, match="45067"):
        c.mass_sendall("m", "x" * 65)
    assert c.draft_add([_article(c, content="<p>" + "字" * 19_990 + "</p>")])
    assert c.upload_image(PNG, "ok.png").startswith("http://mmbiz.qpic.cn/")
    assert len(f.violations()) == 7


def test_datacube_spans(sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    c = WeChatClient(wx)
    y = f.today().toordinal()
    import datetime as dt

    def d(k: int) -> str:
        return dt.date.fromordinal(y - k).isoformat()

    assert c.datacube("getusershare", d(7), d(1)) is not None  # span 7 ok
    assert c.datacube("getuserread", d(3), d(1)) is not None
    for name, begin in (("getusershare", 8), ("getarticlesummary", 2), ("getarticletotal", 2)):
        with pytest.raises(WeChatError, match="61501"):
            c.datacube(name, d(begin), d(1))
    with pytest.raises(WeChatError, match="61501"):
        c.datacube("getarticlesummary", d(0), d(0))  # today: not available yet


def test_wrong_secret_and_ip(sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    bad = wx.model_copy(update={"secret": SecretStr("wrong")})
    with pytest.raises(WeChatAuthError, match="NEWSLETTER_WECHAT_SECRET"):
        WeChatClient(bad).token()
    f.ip_blocked = True
    with pytest.raises(WeChatAccountError, match="IP allow-list"):
        WeChatClient(wx).token()


def test_network_errors_are_retried_then_reported(
    sqlite_settings: Settings, wx: WeChatSettings
) -> None:
    down = wx.model_copy(update={"base_url": "http://127.0.0.1:9", "max_attempts": 3})
    slept: list[float] = []
    with pytest.raises(WeChatError, match="unreachable after 3"):
        WeChatClient(down, sleep=slept.append).token()
    assert slept == [0.01, 0.02]


def test_slow_server_times_out_and_is_retried(
    sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    f.delay = 0.3
    quick = wx.model_copy(update={"timeout": 0.1, "max_attempts": 2})
    with pytest.raises(WeChatError, match="unreachable after 2 attempt"):
        WeChatClient(quick).token()
    f.delay = 0.05
    assert WeChatClient(wx).token()


def test_secret_never_in_logs(
    send_id: int, fake: FakeT, wx: WeChatSettings, caplog: pytest.LogCaptureFixture
) -> None:
    f, _ = fake
    caplog.set_level(logging.DEBUG)
    plain = wx.model_copy(update={"token_endpoint": "plain"})  # the secret travels in the URL
    f.busy(2)
    f.expire_tokens()
    out = publish_send(send_id, settings=plain)
    assert out["state"] == "done"
    with pytest.raises(WeChatAuthError) as exc:
        WeChatClient(plain.model_copy(update={"appid": "wxother"})).token()
    secret = f.secret
    assert "secret=***" in caplog.text  # httpx logged the token URL, redacted
    assert secret not in caplog.text
    assert secret not in str(exc.value) and secret not in repr(plain)
    for tok in f.tokens:
        assert tok not in caplog.text
