"""A faithful fake of the WeChat Official Account API, for tests and the demo.

It follows ``wechat-api.md``: the same paths, JSON shapes, errcodes and limits.

* tokens: the plain ``/cgi-bin/token`` issues a new token on every call and cuts
  the previous one to 5 more minutes; ``stable_token`` returns the same token
  while it is valid (``force_refresh`` replaces it, same 5-minute overlap);
  expired → 42001, superseded → 40001, unknown → 40014, missing → 41001;
* images: ``uploadimg`` (jpg/png, ≤ 1 MB) → ``http://mmbiz.qpic.cn/…`` URLs;
  ``add_material`` → permanent ``media_id``;
* drafts: ≤ 8 articles, content < 20,000 characters counting markup and < 1 MB,
  title ≤ 64, digest ≤ 120, author ≤ 8, ``thumb_media_id`` must exist (40007);
  image URLs not on mmbiz.qpic.cn are stripped from content, as WeChat does;
* freepublish is asynchronous: ``get`` answers status 1 for ``publish_polls``
  polls, then ``publish_final`` (0…6) with ``fail_idx``;
* mass send: ``clientmsgid`` idempotency (45066 within a minute, then 45065
  with the existing ``msg_id``), 45067 over 64 characters, 45028 without quota,
  45011 beyond 60 requests a minute; ``preview`` and ``get``;
* datacube: spans enforced (61501), data only up to yesterday, deterministic
  made-up numbers.

Misbehaviour switches (set them from a test): ``delay``, ``busy(n)``,
``expire_tokens()``, ``ip_blocked``, ``mass_quota``, ``exhaust_api_quota(path)``.
Every request is appended to :attr:`FakeWeChat.requests`; :meth:`violations`
lists those the fake refused for breaking a limit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from newsletter.core import clock

__all__ = ["LIMIT_CODES", "PREVIEW_OPENIDS", "FakeWeChat", "Recorded", "decode_body", "run_fake"]

CST = dt.timezone(dt.timedelta(hours=8))
GRACE = 300  # seconds a replaced token keeps working
LIMIT_CODES = frozenset(
    {45002, 45003, 45004, 45008, 45110, 40005, 40009, 45067, 45011, 61500, 61501}
)
SPANS = {"getarticlesummary": 1, "getarticletotal": 1, "getuserread": 3, "getusershare": 7}
PREVIEW_OPENIDS = ("oPreviewOpenId00000000000001", "oPreviewOpenId00000000000002")
_ESCAPE_RE = re.compile(r"\\\\|\\u")
_IMG_RE = re.compile(r"""<img\b[^>]*?\ssrc\s*=\s*["']([^"']*)["'][^>]*>""", re.I)
_SCRIPT_RE = re.compile(r"<script\b.*?</script\s*>", re.I | re.S)


@dataclass
class Recorded:
    """One request as the fake saw it, and the errcode it answered (0 = success)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any = None
    upload: tuple[str, int] | None = None  # (filename, bytes)
    errcode: int = 0
    at: float = 0.0
    raw: bytes = b""  # the body exactly as it arrived (JSON calls)
    content_type: str = ""


@dataclass
class _Token:
    expires_at: float
    kind: str
    superseded: bool = False


@dataclass
class _Publish:
    media_id: str
    msg_data_id: int
    polls_left: int
    final: int
    fail_idx: list[int]
    article_id: str = ""
    status: int = 1
    urls: list[str] = field(default_factory=list)
    at: float = 0.0


def decode_body(raw: bytes) -> Any:
    """Parse a JSON body the way WeChat does: UTF-8, and ``\\uXXXX`` kept literally.

    WeChat does not decode JSON's unicode escapes inside article content; a client
    that sends ``"\\u4e2d"`` gets the six characters ``\\u4e2d`` shown to readers.
    Raises ValueError for anything that is not UTF-8 JSON.
    """
    text = raw.decode("utf-8")
    return json.loads(
        _ESCAPE_RE.sub(lambda m: m.group(0) if m.group(0) == "\\\\" else "\\\\u", text)
    )


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return ""


_SOURCES = (("session", 2), ("hist_msg", 8), ("feed", 4), ("friends", 8))


def _split(total: int) -> dict[str, int]:
    """Share ``total`` out over the read sources; ``other`` takes the rest, so they add up."""
    parts = {name: total // div for name, div in _SOURCES}
    parts["other"] = total - sum(parts.values())
    return parts


def _breakdown(acc: dict[str, int]) -> dict[str, int]:
    """getarticletotal's per-source fields: reads by source, and shares to 看一看 (feed)."""
    out: dict[str, int] = {}
    for unit, key in (("user", "int_page_read_user"), ("count", "int_page_read_count")):
        for source, n in _split(acc[key]).items():
            out[f"int_page_from_{source}_read_{unit}"] = n
    for unit, key in (("user", "share_user"), ("cnt", "share_count")):
        share = acc[key]
        out[f"feed_share_from_session_{unit}"] = share // 2
        out[f"feed_share_from_feed_{unit}"] = share // 4
        out[f"feed_share_from_other_{unit}"] = share - share // 2 - share // 4
    return out


def _err(code: int, msg: str) -> dict[str, Any]:
    return {"errcode": code, "errmsg": f"{msg} rid: {secrets.token_hex(4)}"}


class FakeWeChat:
    """The state and behaviour of one fake Official Account."""

    def __init__(
        self,
        appid: str = "wx0123456789abcdef",
        secret: str = "fake-app-secret-0001",
        *,
        token_ttl: int = 7200,
    ) -> None:
        self.appid, self.secret, self.token_ttl = appid, secret, token_ttl
        self.lock = threading.RLock()
        self.offset = 0.0
        self.requests: list[Recorded] = []
        self.tokens: dict[str, _Token] = {}
        self.current: dict[str, str] = {}
        self.token_calls = 0
        self.images: dict[str, bytes] = {}
        self.materials: dict[str, str] = {}
        self.drafts: dict[str, dict[str, Any]] = {}
        #: drafts taken out of the draft box by a submit (media_id → draft); a
        #: final failure puts them back, success moves them to ``published``.
        self.submitted: dict[str, dict[str, Any]] = {}
        self.published: dict[str, dict[str, Any]] = {}  # article_id → {articles, time}
        self.publishes: dict[str, _Publish] = {}
        self.mass: dict[str, dict[str, Any]] = {}  # clientmsgid -> record
        self.mass_by_id: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[str, Any]] = {}  # msg_data_id -> {n, titles, date}
        self.previews: list[tuple[str, str]] = []
        #: real OpenIDs are 28 characters ("o" + 27); wxnames are WeChat ids.
        self.followers = set(PREVIEW_OPENIDS)
        self.wxnames = {"nl-editor-wx"}
        self.dedupe_window = 86400.0  # seconds a clientmsgid is remembered
        self._ids = itertools.count(2_247_483_000)
        # misbehaviour and behaviour switches
        self.delay = 0.0
        self.busy_left = 0
        self.busy_paths: set[str] | None = None
        self.ip_blocked = False
        self.exhausted: set[str] = set()
        self.mass_quota = 1  # subscription account: one mass send a day
        self.too_fast_seconds = 60.0
        self.publish_polls = 1
        #: a publish also finishes on its own this many (fake) seconds after the submit
        self.publish_seconds = 2.0
        #: paths whose answer is held back after the request was applied (a lost
        #: answer, for kill -9 tests); remove a path to let its answers go
        self.hold: set[str] = set()
        #: seconds the answer of a path is delayed after the request was applied
        self.slow: dict[str, float] = {}
        self.publish_final = 0
        self.publish_fail_idx: list[int] = []
        self.mass_status = "SEND_SUCCESS"
        self.fail_next: dict[str, int] = {}  # path -> errcode answered once
        self.app = self._build()

    # -- clock and switches ---------------------------------------------------
    def now(self) -> float:
        return clock.timestamp() + self.offset

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.now(), CST).date()

    def advance(self, seconds: float = 0.0, *, days: int = 0) -> None:
        """Move the fake's clock forward (tokens expire, days pass)."""
        with self.lock:
            self.offset += seconds + days * 86400

    def busy(self, n: int, paths: set[str] | None = None) -> None:
        """Answer -1 to the next ``n`` calls (to ``paths`` only, if given)."""
        with self.lock:
            self.busy_left, self.busy_paths = n, paths

    def expire_tokens(self) -> None:
        """Every issued token expires now (the next call answers 42001)."""
        with self.lock:
            for t in self.tokens.values():
                t.expires_at = min(t.expires_at, self.now() - 1)

    def exhaust_api_quota(self, path: str) -> None:
        """``path`` answers 45009 (daily API quota used up) from now on."""
        with self.lock:
            self.exhausted.add(path)

    # -- inspection -------------------------------------------------------------
    def calls(self, path: str, *, ok: bool | None = None) -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r.path == path and (ok is None or (r.errcode == 0) == ok)
            ]

    def violations(self) -> list[Recorded]:
        """Requests refused because they broke a documented limit."""
        with self.lock:
            return [r for r in self.requests if r.errcode in LIMIT_CODES]

    def sends_for(self, clientmsgid: str) -> int:
        """How many times a mass send with ``clientmsgid`` was actually pushed (0 or 1)."""
        return 1 if clientmsgid in self.mass else 0

    # -- tokens -------------------------------------------------------------------
    def _issue(self, kind: str) -> dict[str, Any]:
        old = self.current.get(kind)
        if old and old in self.tokens:
            t = self.tokens[old]
            t.expires_at = min(t.expires_at, self.now() + GRACE)
            t.superseded = True
        tok = secrets.token_urlsafe(96)
        self.tokens[tok] = _Token(self.now() + self.token_ttl, kind)
        self.current[kind] = tok
        return {"access_token": tok, "expires_in": self.token_ttl}

    def _credentials(self, appid: Any, secret: Any) -> dict[str, Any] | None:
        if appid != self.appid:
            return _err(40013, "invalid appid")
        if secret != self.secret:
            return _err(40125, "invalid appsecret")
        self.token_calls += 1
        if self.token_calls > 2000:
            return _err(45009, "reach max api daily quota limit")
        return None

    def token(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        if q.get("grant_type") != "client_credential":
            return _err(40002, "invalid grant_type")
        return self._credentials(q.get("appid"), q.get("secret")) or self._issue("plain")

    def stable_token(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("grant_type") != "client_credential":
            return _err(40002, "invalid grant_type")
        bad = self._credentials(body.get("appid"), body.get("secret"))
        if bad:
            return bad
        cur = self.current.get("stable")
        t = self.tokens.get(cur or "")
        if (
            cur
            and t
            and not t.superseded
            and t.expires_at > self.now()
            and not body.get("force_refresh")
        ):
            return {"access_token": cur, "expires_in": int(t.expires_at - self.now())}
        return self._issue("stable")

    def _check_token(self, q: dict[str, str]) -> dict[str, Any] | None:
        tok = q.get("access_token")
        if not tok:
            return _err(41001, "access_token missing")
        t = self.tokens.get(tok)
        if t is None:
            return _err(40014, "invalid access_token")
        if t.expires_at <= self.now():
            if t.superseded:
                return _err(40001, "invalid credential, access_token is invalid or not latest")
            return _err(42001, "access_token expired")
        return None

    # -- media ----------------------------------------------------------------------
    def _image(
        self, upload: tuple[str, bytes] | None, limit: int, kinds: tuple[str, ...] = ("png", "jpeg")
    ) -> dict[str, Any] | str:
        if upload is None:
            return _err(41005, "media data missing")
        name, data = upload
        ext = name.rsplit(".", 1)[-1].lower()
        ext = "jpeg" if ext == "jpg" else ext
        fmt = _sniff(data)
        if ext not in kinds or fmt != ext:
            return _err(40005, "invalid file type")
        if len(data) > limit:
            return _err(40009, "invalid image size")
        key = hashlib.sha256(data + secrets.token_bytes(4)).hexdigest()[:48]
        url = f"http://mmbiz.qpic.cn/mmbiz_{fmt}/{key}/0?wx_fmt={fmt}"
        self.images[url] = data
        return url

    def uploadimg(self, q: dict[str, str], upload: Any) -> dict[str, Any]:
        url = self._image(upload, 1_000_000)
        return url if isinstance(url, dict) else {"url": url}

    def add_material(self, q: dict[str, str], upload: Any) -> dict[str, Any]:
        kind = q.get("type")
        if kind == "image":  # bmp/png/jpeg/gif, up to 10 MB
            url = self._image(upload, 10 * 1024 * 1024, ("png", "jpeg", "gif", "bmp"))
        elif kind == "thumb":  # jpg only, up to 64 KB
            url = self._image(upload, 64 * 1024, ("jpeg",))
        else:
            return _err(40004, "invalid media type")
        if isinstance(url, dict):
            return url
        media_id = secrets.token_urlsafe(30)
        self.materials[media_id] = url
        return {"media_id": media_id, "url": url, "item": []}

    # -- drafts ------------------------------------------------------------------------
    def _article(self, a: Any) -> dict[str, Any] | str:
        if not isinstance(a, dict) or not a.get("title") or not a.get("content"):
            return _err(44003, "empty news data")
        if len(a["title"]) > 64:
            return _err(45003, "title size out of limit")
        if len(a.get("digest") or "") > 120:
            return _err(45004, "description size out of limit")
        if len(a.get("author") or "") > 8:
            return _err(45110, "author size out of limit")
        content = str(a["content"])
        if len(content) >= 20_000 or len(content.encode()) >= 1_000_000:
            return _err(45002, "content size out of limit")
        if a.get("thumb_media_id") not in self.materials:
            return _err(40007, "invalid media_id")
        content = _SCRIPT_RE.sub("", content)
        content = _IMG_RE.sub(
            lambda m: (
                m.group(0)
                if m.group(1).startswith(("http://mmbiz.qpic.cn/", "https://mmbiz.qpic.cn/"))
                else ""
            ),
            content,
        )
        return json.dumps({**a, "content": content}, ensure_ascii=False)

    def _articles(self, arts: Any) -> list[dict[str, Any]] | dict[str, Any]:
        if not isinstance(arts, list) or not arts:
            return _err(44003, "empty news data")
        if len(arts) > 8:
            return _err(45008, "article size out of limit")
        out = []
        for a in arts:
            checked = self._article(a)
            if isinstance(checked, dict):
                return checked
            out.append(json.loads(checked))
        return out

    def draft_add(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        arts = self._articles((body or {}).get("articles"))
        if isinstance(arts, dict):
            return arts
        media_id = secrets.token_urlsafe(30)
        self.drafts[media_id] = {"articles": arts, "update_time": int(self.now())}
        return {"media_id": media_id}

    def draft_update(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        d = self.drafts.get((body or {}).get("media_id", ""))
        if d is None:
            return _err(40007, "invalid media_id")
        idx = int(body.get("index", 0))
        arts = self._articles([body.get("articles")])
        if isinstance(arts, dict):
            return arts
        if not 0 <= idx < len(d["articles"]):
            return _err(40007, "invalid index")
        d["articles"][idx] = arts[0]
        d["update_time"] = int(self.now())
        return {"errcode": 0, "errmsg": "ok"}

    def draft_delete(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        if self.drafts.pop((body or {}).get("media_id", ""), None) is None:
            return _err(40007, "invalid media_id")
        return {"errcode": 0, "errmsg": "ok"}

    def draft_get(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        d = self.drafts.get((body or {}).get("media_id", ""))
        if d is None:
            return _err(40007, "invalid media_id")
        return {"news_item": [dict(a) for a in d["articles"]]}

    def draft_count(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        return {"total_count": len(self.drafts)}

    def _page(self, body: Any) -> tuple[int, int, bool] | dict[str, Any]:
        try:
            off, count = int(body.get("offset", 0)), int(body.get("count", 20))
        except (TypeError, ValueError, AttributeError):
            return _err(40097, "invalid args")
        if off < 0 or not 1 <= count <= 20:
            return _err(40097, "invalid args")
        return off, count, bool(int(body.get("no_content", 0) or 0))

    @staticmethod
    def _news(articles: list[dict[str, Any]], no_content: bool) -> list[dict[str, Any]]:
        if not no_content:
            return [dict(a) for a in articles]
        return [{k: v for k, v in a.items() if k != "content"} for a in articles]

    def _batch(self, store: dict[str, dict[str, Any]], id_key: str, body: Any) -> dict[str, Any]:
        """One page of a box (drafts or published articles), newest first, as batchget answers."""
        page_args = self._page(body)
        if isinstance(page_args, dict):
            return page_args
        off, count, no_content = page_args
        items = sorted(store.items(), key=lambda kv: -kv[1]["update_time"])
        page = [
            {
                id_key: k,
                "update_time": v["update_time"],
                "content": {
                    "news_item": self._news(v["articles"], no_content),
                    "create_time": v["update_time"],
                    "update_time": v["update_time"],
                },
            }
            for k, v in items[off : off + count]
        ]
        return {"total_count": len(items), "item_count": len(page), "item": page}

    def draft_batchget(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        return self._batch(self.drafts, "media_id", body)

    # -- publishing -------------------------------------------------------------------------
    def _draft_any(self, media_id: str) -> dict[str, Any] | None:
        """A draft in the box, or one a submit took out of it (mass send still takes it)."""
        return self.drafts.get(media_id) or self.submitted.get(media_id)

    def _register(self, msg_data_id: int, media_id: str) -> None:
        draft = self._draft_any(media_id)
        assert draft is not None
        arts = draft["articles"]
        self.messages[msg_data_id] = {"titles": [a["title"] for a in arts], "date": self.today()}

    def freepublish_submit(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        media_id = (body or {}).get("media_id", "")
        if media_id not in self.drafts:  # a draft is published once: submit takes it out
            return _err(40007, "invalid media_id")
        self.submitted[media_id] = self.drafts.pop(media_id)
        pid = str(next(self._ids))
        self.publishes[pid] = _Publish(
            media_id,
            next(self._ids),
            self.publish_polls,
            self.publish_final,
            list(self.publish_fail_idx),
            at=self.now(),
        )
        return {
            "errcode": 0,
            "errmsg": "ok",
            "publish_id": pid,
            "msg_data_id": self.publishes[pid].msg_data_id,
        }

    def _tick(self) -> None:
        """Finish the publishes whose time has come (WeChat works on its own)."""
        for p in self.publishes.values():
            if p.status == 1 and self.now() - p.at >= self.publish_seconds:
                self._finish(p)

    def freepublish_get(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        p = self.publishes.get(str((body or {}).get("publish_id", "")))
        if p is None:
            return _err(53600, "invalid publish_id")
        if p.status == 1:
            if p.polls_left > 0 and self.now() - p.at < self.publish_seconds:
                p.polls_left -= 1
            else:
                self._finish(p)
        out: dict[str, Any] = {"publish_id": str(body["publish_id"]), "publish_status": p.status}
        if p.status in (0, 5, 6):
            out["article_id"] = p.article_id
            out["article_detail"] = {
                "count": len(p.urls),
                "item": [{"idx": i + 1, "article_url": u} for i, u in enumerate(p.urls)],
            }
        out["fail_idx"] = p.fail_idx if p.status in (2, 3, 4) else []
        return out

    def _finish(self, p: _Publish) -> None:
        p.status = p.final
        draft = self.submitted[p.media_id]
        if p.final in (0, 5, 6):
            n = len(draft["articles"])
            p.article_id = secrets.token_urlsafe(24)
            p.urls = [f"https://mp.weixin.qq.com/s/{p.article_id}{i}" for i in range(n)]
            self._register(p.msg_data_id, p.media_id)
            self.published[p.article_id] = {
                "articles": [
                    {**a, "url": u, "is_deleted": p.final != 0}
                    for a, u in zip(draft["articles"], p.urls, strict=True)
                ],
                "update_time": int(self.now()),
            }
        else:  # a failed publish leaves the draft in the box, to be fixed and re-submitted
            self.drafts[p.media_id] = self.submitted.pop(p.media_id)

    def freepublish_batchget(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        return self._batch(self.published, "article_id", body)

    def freepublish_getarticle(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        art = self.published.get(str((body or {}).get("article_id", "")))
        if art is None:
            return _err(53600, "invalid article_id")
        return {"news_item": [dict(a) for a in art["articles"]]}

    def event_xml(self, publish_id: str) -> str:
        """The PUBLISHJOBFINISH event WeChat would push for ``publish_id`` (once final)."""
        with self.lock:
            p = self.publishes[publish_id]
            if p.status == 1:
                self._finish(p)
            items = "".join(
                f"<item><idx>{i + 1}</idx><article_url><![CDATA[{u}]]></article_url></item>"
                for i, u in enumerate(p.urls)
            )
            fails = (
                "".join(f"<fail_idx>{i}</fail_idx>" for i in p.fail_idx)
                if p.status in (2, 3, 4)
                else ""
            )
            return (
                f"<xml><ToUserName><![CDATA[gh_fake]]></ToUserName>"
                f"<FromUserName><![CDATA[oSystem]]></FromUserName>"
                f"<CreateTime>{int(self.now())}</CreateTime>"
                f"<MsgType><![CDATA[event]]></MsgType>"
                f"<Event><![CDATA[PUBLISHJOBFINISH]]></Event><PublishEventInfo>"
                f"<publish_id>{publish_id}</publish_id><publish_status>{p.status}"
                f"</publish_status><article_id><![CDATA[{p.article_id}]]></article_id>"
                f"<article_detail><count>{len(p.urls)}</count>{items}</article_detail>"
                f"{fails}</PublishEventInfo></xml>"
            )

    # -- mass sending -------------------------------------------------------------------------
    def sendall(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        body = body or {}
        recent = [
            r
            for r in self.requests
            if r.path == "/cgi-bin/message/mass/sendall" and r.at > self.now() - 60
        ]
        if len(recent) > 60:
            return _err(45011, "api minute-quota reach limit")
        if body.get("msgtype") != "mpnews" or not (body.get("filter") or {}).get("is_to_all"):
            return _err(40130, "invalid filter or msgtype")
        media_id = (body.get("mpnews") or {}).get("media_id", "")
        if self._draft_any(media_id) is None:
            return _err(40007, "invalid media_id")
        cid = str(body.get("clientmsgid") or "")
        if len(cid) > 64:
            return _err(45067, "clientmsgid size out of limit")
        if cid and cid in self.mass and self.now() - self.mass[cid]["at"] < self.dedupe_window:
            m = self.mass[cid]
            if self.now() - m["at"] < self.too_fast_seconds:
                return _err(45066, "same clientmsgid retry too fast")
            return {**_err(45065, "clientmsgid exist"), "msg_id": m["msg_id"]}
        sent_today = [m for m in self.mass_by_id.values() if m["date"] == self.today()]
        if len(sent_today) >= self.mass_quota:
            return _err(45028, "has no masssend quota")
        msg_id, data_id = next(self._ids), next(self._ids)
        rec = {
            "msg_id": msg_id,
            "msg_data_id": data_id,
            "at": self.now(),
            "date": self.today(),
            "media_id": media_id,
            "clientmsgid": cid,
        }
        self.mass_by_id[msg_id] = rec
        if cid:
            self.mass[cid] = rec
        self._register(data_id, media_id)
        return {
            "errcode": 0,
            "errmsg": "send job submission success",
            "msg_id": msg_id,
            "msg_data_id": data_id,
        }

    def preview(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        body = body or {}
        if "towxname" in body:  # a WeChat id; it wins over touser, as WeChat documents
            who = str(body["towxname"])
            if who not in self.wxnames:
                return _err(40132, "invalid username")
        else:
            who = str(body.get("touser", ""))
            if who not in self.followers:
                return _err(40003, "invalid openid")
        media_id = (body.get("mpnews") or {}).get("media_id", "")
        if self._draft_any(media_id) is None:
            return _err(40007, "invalid media_id")
        self.previews.append((who, media_id))
        return {"errcode": 0, "errmsg": "preview success", "msg_id": next(self._ids)}

    def mass_get(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        m = self.mass_by_id.get(int((body or {}).get("msg_id", 0) or 0))
        if m is None:
            return _err(40007, "invalid msg_id")
        return {"msg_id": m["msg_id"], "msg_status": self.mass_status}

    def quota_get(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        path = (body or {}).get("cgi_path", "")
        used = len([r for r in self.requests if r.path == path])
        limit = self.mass_quota if path.endswith("sendall") else 100_000
        return {
            "errcode": 0,
            "errmsg": "ok",
            "quota": {
                "daily_limit": limit,
                "used": min(used, limit),
                "remain": max(0, limit - used),
            },
        }

    # -- datacube -------------------------------------------------------------------------------
    def _stats(self, msg: int, idx: int, day: dt.date, sent: dt.date) -> dict[str, int]:
        h = hashlib.sha256(f"{msg}|{idx}|{day}".encode()).digest()
        decay = 1 + (day - sent).days
        users = (200 + h[0] * 4) // decay + (50 if idx == 1 else 0)
        return {
            "int_page_read_user": users,
            "int_page_read_count": users + h[1] % 40,
            "ori_page_read_user": h[2] % 20,
            "ori_page_read_count": h[2] % 20 + h[3] % 5,
            "share_user": h[4] % 30 // decay,
            "share_count": h[4] % 30 // decay + h[5] % 3,
            "add_to_fav_user": h[6] % 15 // decay,
            "add_to_fav_count": h[6] % 15 // decay,
        }

    def datacube(self, name: str, body: Any) -> dict[str, Any]:
        try:
            begin = dt.date.fromisoformat(body["begin_date"])
            end = dt.date.fromisoformat(body["end_date"])
        except (KeyError, TypeError, ValueError):
            return _err(61500, "date format error")
        if begin > end or (end - begin).days + 1 > SPANS[name] or end >= self.today():
            return _err(61501, "date range error")
        days = [begin + dt.timedelta(d) for d in range((end - begin).days + 1)]
        rows: list[dict[str, Any]] = []
        for msg, info in sorted(self.messages.items()):
            sent, titles = info["date"], info["titles"]
            for idx, title in enumerate(titles, start=1):
                if name == "getarticlesummary":
                    rows += [
                        {
                            "ref_date": str(d),
                            "msgid": f"{msg}_{idx}",
                            "title": title,
                            "user_source": 0,
                            **self._stats(msg, idx, d, sent),
                        }
                        for d in days
                        if sent <= d <= sent + dt.timedelta(6)
                    ]
                elif name == "getarticletotal" and sent == begin:
                    rows.append(self._total(msg, idx, title, sent))
        if name in ("getuserread", "getusershare"):
            rows = self._account(name, days)
        return {"list": rows}

    def _total(self, msg: int, idx: int, title: str, sent: dt.date) -> dict[str, Any]:
        details, acc = [], dict.fromkeys(self._stats(msg, idx, sent, sent), 0)
        for k in range(7):
            d = sent + dt.timedelta(k)
            if d >= self.today():
                break
            for key, v in self._stats(msg, idx, d, sent).items():
                acc[key] += v
            details.append({"stat_date": str(d), "target_user": 12_000, **acc, **_breakdown(acc)})
        return {"ref_date": str(sent), "msgid": f"{msg}_{idx}", "title": title, "details": details}

    def _account(self, name: str, days: list[dt.date]) -> list[dict[str, Any]]:
        out = []
        for d in days:
            tot: dict[str, int] = {}
            for msg, info in self.messages.items():
                if info["date"] <= d <= info["date"] + dt.timedelta(6):
                    for idx in range(1, len(info["titles"]) + 1):
                        for k, v in self._stats(msg, idx, d, info["date"]).items():
                            tot[k] = tot.get(k, 0) + v
            if name == "getusershare":
                out.append(
                    {
                        "ref_date": str(d),
                        "share_scene": 1,
                        "share_count": tot.get("share_count", 0),
                        "share_user": tot.get("share_user", 0),
                    }
                )
            else:
                out.append(
                    {
                        "ref_date": str(d),
                        "user_source": 0,
                        **{k: tot.get(k, 0) for k in self._stats(0, 1, d, d)},
                    }
                )
        return out

    # -- the HTTP app ----------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        app = FastAPI(title="fake WeChat API", docs_url=None, redoc_url=None)
        Handler = Callable[[dict[str, str], Any], dict[str, Any]]
        routes: list[tuple[str, str, Handler, bool, bool]] = [
            ("GET", "/cgi-bin/token", self.token, False, False),
            ("POST", "/cgi-bin/stable_token", self.stable_token, False, False),
            ("POST", "/cgi-bin/openapi/quota/get", self.quota_get, True, False),
            ("POST", "/cgi-bin/media/uploadimg", self.uploadimg, True, True),
            ("POST", "/cgi-bin/material/add_material", self.add_material, True, True),
            ("POST", "/cgi-bin/draft/add", self.draft_add, True, False),
            ("POST", "/cgi-bin/draft/update", self.draft_update, True, False),
            ("POST", "/cgi-bin/draft/delete", self.draft_delete, True, False),
            ("POST", "/cgi-bin/draft/batchget", self.draft_batchget, True, False),
            ("POST", "/cgi-bin/draft/get", self.draft_get, True, False),
            ("GET", "/cgi-bin/draft/count", self.draft_count, True, False),
            ("POST", "/cgi-bin/freepublish/batchget", self.freepublish_batchget, True, False),
            ("POST", "/cgi-bin/freepublish/getarticle", self.freepublish_getarticle, True, False),
            ("POST", "/cgi-bin/freepublish/submit", self.freepublish_submit, True, False),
            ("POST", "/cgi-bin/freepublish/get", self.freepublish_get, True, False),
            ("POST", "/cgi-bin/message/mass/sendall", self.sendall, True, False),
            ("POST", "/cgi-bin/message/mass/preview", self.preview, True, False),
            ("POST", "/cgi-bin/message/mass/get", self.mass_get, True, False),
        ]
        for name in SPANS:
            routes.append(("POST", f"/datacube/{name}", self._cube(name), True, False))
        for method, path, handler, auth, multipart in routes:
            app.add_api_route(
                path, self._endpoint(path, handler, auth, multipart), methods=[method]
            )

        async def unknown(request: Request, exc: Exception) -> JSONResponse:
            # WeChat answers an unknown path or method in its own shape, with HTTP 200
            with self.lock:
                out = _err(48001, "api unauthorized")
                self.requests.append(
                    Recorded(request.method, request.url.path, {}, errcode=48001, at=self.now())
                )
            return JSONResponse(out)

        app.add_exception_handler(404, unknown)
        app.add_exception_handler(405, unknown)
        return app

    def _cube(self, name: str) -> Callable[[dict[str, str], Any], dict[str, Any]]:
        return lambda q, body: self.datacube(name, body)

    def _endpoint(self, path: str, handler: Any, auth: bool, multipart: bool) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            q = dict(request.query_params)
            rec = Recorded(request.method, path, q, at=self.now())
            payload: Any = None
            if multipart:
                form = await request.form()
                f = form.get("media")
                if f is not None and not isinstance(f, str):
                    data = await f.read()
                    payload = (f.filename or "", data)
                    rec.upload = (f.filename or "", len(data))
            else:
                raw = await request.body()
                rec.raw, rec.content_type = raw, request.headers.get("content-type", "")
                try:
                    payload = decode_body(raw) if raw else {}
                except ValueError:
                    payload = None
                rec.body = payload
            if self.delay:
                await asyncio.sleep(self.delay)
            with self.lock:
                self._tick()
                out = self._answer(path, q, payload, handler, auth, multipart)
                rec.errcode = int(out.get("errcode", 0) or 0)
                self.requests.append(rec)
            if path in self.slow:
                await asyncio.sleep(self.slow[path])
            while path in self.hold:
                await asyncio.sleep(0.02)
            return JSONResponse(out)

        return endpoint

    def _answer(
        self, path: str, q: dict[str, str], payload: Any, handler: Any, auth: bool, multipart: bool
    ) -> dict[str, Any]:
        if self.ip_blocked:
            return _err(40164, "invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist")
        if self.busy_left > 0 and (self.busy_paths is None or path in self.busy_paths):
            self.busy_left -= 1
            return _err(-1, "system error")
        if auth:
            bad = self._check_token(q)
            if bad:
                return bad
        if path in self.exhausted:
            return _err(45009, "reach max api daily quota limit")
        if path in self.fail_next:
            return _err(self.fail_next.pop(path), "injected failure")
        if payload is None and not multipart:
            return _err(47001, "data format error")
        return dict(handler(q, payload))


@contextmanager
def run_fake(fake: FakeWeChat | None = None) -> Iterator[tuple[FakeWeChat, str]]:
    """Serve ``fake`` with uvicorn on a free 127.0.0.1 port in a thread; yields (fake, url)."""
    import uvicorn

    fake = fake or FakeWeChat()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(fake.app, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"fake-wechat-{port}"
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake WeChat server did not start")
        time.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
