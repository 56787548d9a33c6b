"""The callback endpoint: WeChat's signature, PUBLISHJOBFINISH."""

from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.testclient import TestClient

from newsletter.core import clock
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.devtools.wechat_fake import FakeWeChat
from newsletter.wechat.callback import router, signature
from newsletter.wechat.publisher import publish_send

FakeT = tuple[FakeWeChat, str]


def _client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def _signed(token: str) -> dict[str, str]:
    ts, nonce = str(int(clock.timestamp())), "n0nce"
    return {"signature": signature(token, ts, nonce), "timestamp": ts, "nonce": nonce}


def test_url_verification(wx: WeChatSettings) -> None:
    c = _client()
    q = _signed("callback-token-1")
    assert c.get("/wechat/callback", params={**q, "echostr": "abc"}).text == "abc"
    assert c.get("/wechat/callback", params={**_signed("wrong"), "echostr": "x"}).status_code == 403
    old = {**q, "timestamp": str(int(clock.timestamp()) - 3600)}
    assert c.get("/wechat/callback", params=old).status_code == 403


def test_publishjobfinish_completes_a_publication(
    send_id: int, fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    f.publish_polls, f.publish_seconds = 10_000, 1e9  # polling never sees the end
    short = wx.model_copy(update={"poll_timeout": 0.2})
    out = publish_send(send_id, settings=short)
    assert out["state"] == "publishing" and "still publishing" in out["error"]
    xml = f.event_xml(out["publish"]["publish_id"]).encode()
    c = _client()
    assert c.post("/wechat/callback", params=_signed("wrong"), content=xml).status_code == 403
    r = c.post("/wechat/callback", params=_signed("callback-token-1"), content=xml)
    assert r.status_code == 200 and r.text == "success"
    assert (
        c.post("/wechat/callback", params=_signed("callback-token-1"), content=xml).text
        == "success"
    )  # a repeat is harmless
    out = publish_send(send_id, settings=short)
    assert out["state"] == "done" and len(out["publish"]["article_urls"]) == 5


def test_failed_event_reports_index(send_id: int, fake: FakeT, wx: WeChatSettings) -> None:
    f, _ = fake
    f.publish_polls, f.publish_final, f.publish_fail_idx = 10_000, 4, [3]
    f.publish_seconds = 1e9
    out = publish_send(send_id, settings=wx.model_copy(update={"poll_timeout": 0.1}))
    xml = f.event_xml(out["publish"]["publish_id"]).encode()
    _client().post("/wechat/callback", params=_signed("callback-token-1"), content=xml)
    from newsletter.wechat.publisher import status

    st = status(send_id)
    assert st["state"] == "failed" and st["failed_articles"][0]["index"] == 3
    assert "平台审核不通过" in st["error"]


def test_xml_entities_refused(wx: WeChatSettings) -> None:
    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Event>&a;</Event></xml>'
    r = _client().post("/wechat/callback", params=_signed("callback-token-1"), content=bomb)
    assert r.status_code == 400


def test_publish_recovered_through_batchget_shows_its_urls_and_gets_its_publish_id(
    issue_id: int, fake: FakeT, wx: WeChatSettings
) -> None:
    """A submit whose answer was lost is found in freepublish/batchget: ``status`` shows
    its article URLs at once, and WeChat's PUBLISHJOBFINISH brings the publish_id."""
    from typer.testing import CliRunner

    from newsletter.wechat.cli import wechat_app
    from newsletter.wechat.publisher import publish_issue

    f, _ = fake
    f.slow["/cgi-bin/freepublish/submit"] = 1.5  # applied by WeChat, answered too late
    out = publish_issue(issue_id, settings=wx.model_copy(update={"timeout": 0.5}))
    assert out["state"] == "submitting" and out["publish"]["publish_id"] is None
    f.slow.clear()
    out = publish_issue(issue_id, settings=wx)
    (pid,) = f.publishes
    urls = f.publishes[pid].urls
    assert out["state"] == "done" and len(f.calls("/cgi-bin/freepublish/submit")) == 1
    assert out["publish"]["publish_id"] is None and out["publish"]["article_urls"] == urls
    r = CliRunner().invoke(wechat_app, ["status", str(issue_id)])
    assert r.exit_code == 0, r.output
    assert all(u in r.stdout for u in urls) and "awaiting the callback" in r.stdout

    xml = f.event_xml(pid).encode()
    assert _client().post("/wechat/callback", params=_signed("callback-token-1"), content=xml)
    r = CliRunner().invoke(wechat_app, ["status", str(issue_id), "--json"])
    publish = json.loads(r.stdout)["publish"]
    assert publish["publish_id"] == pid and publish["article_urls"] == urls
    assert json.loads(r.stdout)["state"] == "done"
