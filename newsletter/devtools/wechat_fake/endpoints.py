"""The fake's endpoints, as WeChat answers them: media, drafts, publishing, mass sending
and the datacube statistics."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from typing import Any

from newsletter.devtools.wechat_fake.state import (
    _IMG_RE,
    _SCRIPT_RE,
    SPANS,
    FakeState,
    _breakdown,
    _err,
    _Publish,
    _sniff,
)


class Endpoints(FakeState):
    """What each path answers (a method per endpoint); see the package docstring."""

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
