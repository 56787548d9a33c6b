"""The fake WeChat's contract, run with two clients: ours and wechatpy.

wechatpy (pinned in the dev extras) was written by others against the real API,
so the fake passing the same suite through it shows that the fake answers as
WeChat does, not only as our client expects. wechatpy predates the draft and
freepublish interfaces; for those it is driven through its own generic
``post`` (its transport, token handling and error decoding), with the paths
and bodies of WeChat's documentation.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from wechatpy import WeChatClient as WechatpyClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.memorystorage import MemoryStorage

from newsletter.core.config import Settings
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.devtools.wechat_fake import PREVIEW_OPENIDS, FakeWeChat
from newsletter.wechat.client import WeChatClient
from newsletter.wechat.errors import WeChatError

ROOT = Path(__file__).resolve().parents[2]
PNG = (ROOT / "examples" / "images" / "chart-1.png").read_bytes()
COVER = (ROOT / "examples" / "images" / "cover.png").read_bytes()
FakeT = tuple[FakeWeChat, str]


class ApiError(Exception):
    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode


class Ours:
    """The contract through the project's client."""

    name = "ours"

    def __init__(self, wx: WeChatSettings, f: FakeWeChat) -> None:
        self.c = WeChatClient(wx, sleep=lambda s: None)
        self.f = f

    def close(self) -> None:
        self.c.close()

    def _do(self, fn: Any, *a: Any, **k: Any) -> Any:
        try:
            return fn(*a, **k)
        except WeChatError as exc:
            raise ApiError(int(exc.errcode or 0)) from None

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._do(self.c.call, f"/cgi-bin/{path}", json=body)

    def token(self) -> str:
        return self.c.token()

    def uploadimg(self, data: bytes) -> str:
        return self._do(self.c.upload_image, data, "a.png")

    def add_material(self, data: bytes) -> str:
        return self._do(self.c.add_material, data, "cover.png")[0]

    def draft_count(self) -> int:
        return self._do(self.c.draft_count)

    def sendall(self, media_id: str, cid: str) -> dict[str, Any]:
        return self.post(
            "message/mass/sendall",
            {
                "filter": {"is_to_all": True},
                "mpnews": {"media_id": media_id},
                "msgtype": "mpnews",
                "send_ignore_reprint": 0,
                "clientmsgid": cid,
            },
        )

    def preview(self, media_id: str, who: str) -> None:
        self._do(self.c.mass_preview, media_id, who)

    def article_total(self, day: str) -> list[dict[str, Any]]:
        return self._do(self.c.datacube, "getarticletotal", day, day)

    def article_summary(self, day: str) -> list[dict[str, Any]]:
        return self._do(self.c.datacube, "getarticlesummary", day, day)


class _ToFake(HTTPAdapter):
    """Sends wechatpy's requests for api.weixin.qq.com to the fake, unchanged otherwise."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:  # type: ignore[override]
        assert request.url is not None
        request.url = re.sub(r"^https://api\.weixin\.qq\.com", self.base, request.url)
        return super().send(request, **kw)


class Theirs:
    """The contract through wechatpy."""

    name = "wechatpy"

    def __init__(self, f: FakeWeChat, url: str) -> None:
        self.c = WechatpyClient(f.appid, f.secret, session=MemoryStorage(), timeout=10)
        self.c._http.mount("https://api.weixin.qq.com", _ToFake(url))

    def close(self) -> None:
        self.c._http.close()

    def _do(self, fn: Any, *a: Any, **k: Any) -> Any:
        try:
            return fn(*a, **k)
        except WeChatClientException as exc:
            raise ApiError(int(exc.errcode or 0)) from None

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._do(self.c.post, path, data=body)

    def token(self) -> str:
        return str(self.c.access_token)

    def uploadimg(self, data: bytes) -> str:
        return str(self._do(self.c.media.upload_mass_image, ("a.png", data, "image/png")))

    def add_material(self, data: bytes) -> str:
        out = self._do(self.c.material.add, "image", ("cover.png", data, "image/png"))
        return str(out["media_id"])

    def draft_count(self) -> int:
        return int(self._do(self.c.get, "draft/count")["total_count"])

    def sendall(self, media_id: str, cid: str) -> dict[str, Any]:
        return self._do(
            self.c.message.send_mass_article, None, media_id, is_to_all=True, client_msg_id=cid
        )

    def preview(self, media_id: str, who: str) -> None:
        self._do(self.c.message.send_mass_article, who, media_id, preview=True)

    def article_total(self, day: str) -> list[dict[str, Any]]:
        return list(self._do(self.c.datacube.get_article_total, day, day))

    def article_summary(self, day: str) -> list[dict[str, Any]]:
        return list(self._do(self.c.datacube.get_article_summary, day, day))


@pytest.fixture(params=["ours", "wechatpy"])
def api(
    request: pytest.FixtureRequest, sqlite_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> Iterator[Ours | Theirs]:
    f, url = fake
    client: Ours | Theirs = Ours(wx, f) if request.param == "ours" else Theirs(f, url)
    yield client
    client.close()


def _article(thumb: str, n: int, img: str = "") -> dict[str, Any]:
    return {
        "title": f"第{n}篇：政策周报",
        "author": "编辑部",
        "digest": "本期要点",
        "content": f'<p>正文第{n}篇</p><img src="{img}"><img src="https://example.org/x.png">',
        "content_source_url": f"https://news.example.org/archive/{n}",
        "thumb_media_id": thumb,
        "need_open_comment": 0,
        "only_fans_can_comment": 0,
    }


def test_token_and_images(api: Ours | Theirs, fake: FakeT) -> None:
    f, _ = fake
    assert len(api.token()) > 20
    url = api.uploadimg(PNG)
    assert url.startswith("http://mmbiz.qpic.cn/")
    assert api.add_material(COVER) in f.materials
    with pytest.raises(ApiError) as err:  # uploadimg takes jpg/png only
        api.uploadimg(b"GIF89a" + b"\0" * 20)
    assert err.value.errcode == 40005


def test_drafts(api: Ours | Theirs) -> None:
    thumb = api.add_material(COVER)
    img = api.uploadimg(PNG)
    media_id = api.post("draft/add", {"articles": [_article(thumb, 1, img), _article(thumb, 2)]})[
        "media_id"
    ]
    got = api.post("draft/get", {"media_id": media_id})["news_item"]
    assert [a["title"] for a in got] == ["第1篇：政策周报", "第2篇：政策周报"]
    assert img in got[0]["content"] and "example.org/x.png" not in got[0]["content"]
    assert api.draft_count() == 1
    page = api.post("draft/batchget", {"offset": 0, "count": 20, "no_content": 1})
    assert page["total_count"] == 1 and "content" not in page["item"][0]["content"]["news_item"][0]
    page = api.post("draft/batchget", {"offset": 0, "count": 20, "no_content": 0})
    assert "正文第1篇" in page["item"][0]["content"]["news_item"][0]["content"]
    api.post("draft/delete", {"media_id": media_id})
    assert api.draft_count() == 0
    with pytest.raises(ApiError) as err:
        api.post("draft/get", {"media_id": media_id})
    assert err.value.errcode == 40007
    with pytest.raises(ApiError) as err:  # over 8 articles
        api.post("draft/add", {"articles": [_article(thumb, i) for i in range(9)]})
    assert err.value.errcode == 45008
    with pytest.raises(ApiError) as err:  # unknown path: WeChat's shape, not FastAPI's
        api.post("draft/nonexistent", {})
    assert err.value.errcode == 48001


def test_freepublish(api: Ours | Theirs) -> None:
    thumb = api.add_material(COVER)
    media_id = api.post("draft/add", {"articles": [_article(thumb, 1)]})["media_id"]
    sub = api.post("freepublish/submit", {"media_id": media_id})
    publish_id = str(sub["publish_id"])
    assert sub["msg_data_id"]
    with pytest.raises(ApiError) as err:  # one draft, one publish
        api.post("freepublish/submit", {"media_id": media_id})
    assert err.value.errcode == 40007
    state = api.post("freepublish/get", {"publish_id": publish_id})
    while state["publish_status"] == 1:
        state = api.post("freepublish/get", {"publish_id": publish_id})
    assert state["publish_status"] == 0 and state["fail_idx"] == []
    article_id = state["article_id"]
    assert state["article_detail"]["item"][0]["article_url"].startswith("https://mp.weixin.qq.com")
    page = api.post("freepublish/batchget", {"offset": 0, "count": 10, "no_content": 0})
    assert page["total_count"] == 1 and page["item"][0]["article_id"] == article_id
    got = api.post("freepublish/getarticle", {"article_id": article_id})["news_item"]
    assert got[0]["title"] == "第1篇：政策周报" and got[0]["url"].startswith("https://mp.")
    assert api.draft_count() == 0  # the published draft left the box


def test_mass_send_idempotency_and_preview(api: Ours | Theirs, fake: FakeT) -> None:
    f, _ = fake
    thumb = api.add_material(COVER)
    media_id = api.post("draft/add", {"articles": [_article(thumb, 1)]})["media_id"]
    first = api.sendall(media_id, "nl-contract-1-wechat")
    assert first["msg_id"] and first["msg_data_id"]
    with pytest.raises(ApiError) as err:  # the same clientmsgid within a minute
        api.sendall(media_id, "nl-contract-1-wechat")
    assert err.value.errcode == 45066
    f.advance(61)
    with pytest.raises(ApiError) as err:  # the same clientmsgid later: it exists
        api.sendall(media_id, "nl-contract-1-wechat")
    assert err.value.errcode == 45065
    assert len(f.mass_by_id) == 1
    f.advance(days=1, seconds=10)  # the documented window is 24 hours
    again = api.sendall(media_id, "nl-contract-1-wechat")
    assert again["msg_id"] != first["msg_id"]
    with pytest.raises(ApiError) as err:
        api.sendall(media_id, "x" * 65)
    assert err.value.errcode == 45067
    api.preview(media_id, PREVIEW_OPENIDS[0])
    api.preview(media_id, "nl-editor-wx")
    assert f.previews == [(PREVIEW_OPENIDS[0], media_id), ("nl-editor-wx", media_id)]
    with pytest.raises(ApiError) as err:
        api.preview(media_id, "someone-else")
    assert err.value.errcode == 40132


def test_datacube(api: Ours | Theirs, fake: FakeT) -> None:
    f, _ = fake
    thumb = api.add_material(COVER)
    media_id = api.post("draft/add", {"articles": [_article(thumb, 1), _article(thumb, 2)]})[
        "media_id"
    ]
    sent = api.sendall(media_id, "nl-contract-cube")
    day = f.today().isoformat()
    with pytest.raises(ApiError) as err:  # data only up to yesterday
        api.article_summary(day)
    assert err.value.errcode == 61501
    f.advance(days=3)
    rows = api.article_summary(day)
    assert {r["msgid"] for r in rows} == {f"{sent['msg_data_id']}_1", f"{sent['msg_data_id']}_2"}
    total = api.article_total(day)
    assert len(total) == 2
    details = total[0]["details"]
    assert [d["stat_date"] for d in details] == [
        (dt.date.fromisoformat(day) + dt.timedelta(k)).isoformat() for k in range(3)
    ]
    last = details[-1]
    sources = ("session", "hist_msg", "feed", "friends", "other")
    assert sum(last[f"int_page_from_{s}_read_user"] for s in sources) == last["int_page_read_user"]
    assert (
        sum(last[f"int_page_from_{s}_read_count"] for s in sources) == last["int_page_read_count"]
    )
    shares = ("session", "feed", "other")
    assert sum(last[f"feed_share_from_{s}_user"] for s in shares) == last["share_user"]
    assert sum(last[f"feed_share_from_{s}_cnt"] for s in shares) == last["share_count"]
