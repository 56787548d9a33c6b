"""Publishing one issue to WeChat as the wechat channel of a send.

Steps, each stored in ``wechat_publication`` before the next begins:

1. ``assets``: content images (uploadimg) and the cover (add_material), once
   per account and content hash (:mod:`.assets`);
2. ``drafted``: ``draft/add`` with the renderer's articles. The intent
   (``drafting`` + a fingerprint) is stored first; a re-run that finds
   ``drafting`` without a media_id looks for the draft in ``draft/batchget``
   before creating one, so a crash never leaves two drafts;
3. ``published`` (modes publish, both): ``freepublish/submit``, then
   ``freepublish/get`` until the status is final (or the callback reports it).
   Status 2, 3, 4, 5 or 6 fails the channel with the failed article indexes;
4. ``mass_sent`` (modes mass_send, both): ``message/mass/sendall`` with a
   ``clientmsgid`` derived from the publication, issue number and channel, so a
   re-run, a second send of the same issue or a crash at any instant never
   pushes twice (45065 is recorded as success);
5. ``done``.

Guarantees:

* **What was approved is what followers get.** Only an approved issue is
  previewed, published or mass-sent, and only its sealed version
  (:mod:`newsletter.issues.seal`): the approved source and the image and cover
  bytes stored at approval, verified against the seal before each run; the
  issue's folder is never read. A broken seal refuses (``seal-broken``) before
  anything is uploaded, and ops are alerted. Every run renders that content and
  compares the hash of the articles with the stored draft's; when they differ a
  new draft is made and the old one deleted (``draft/delete``), so a preview,
  an edit and a publish push the edit. Content that changes after WeChat took
  the draft (a submit or a push is under way or done) is refused, never pushed.
* **Each step once.** Re-running :func:`publish_send` resumes at the first
  unfinished step and never repeats a finished one. A submit whose answer was
  lost (a timeout, a crash) is looked up before anything is re-submitted: a
  draft that is no longer in the draft box was taken by that submit, and the
  publish is found in ``freepublish/batchget``; a draft still in the box was
  not published and is submitted again. The window that remains is WeChat
  accepting a submit without taking the draft out of the box at once; each
  re-submit after an unknown outcome is therefore counted in ``at_risk``.
* **Leases that people can see.** Two runs never work on one publication at
  once; a run that meets a live lease fails with the holder and the expiry
  (:class:`LeaseHeld`), and ``take_over`` breaks a lease whose holder is gone.
* A WeChat failure is recorded on this send only, so the email channel is
  never held back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update

from newsletter.content.variants import to_variant
from newsletter.core import clock
from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound, SealError, StateError
from newsletter.core.wechat_settings import WeChatSettings, get_wechat_settings
from newsletter.issues.seal import report_broken
from newsletter.issues.store import context_for, get_issue, sealed_version
from newsletter.models import Issue, Publication, Send, utcnow
from newsletter.models.wechat import WeChatPublication
from newsletter.render.wechat import MAX_ARTICLES, MAX_DIGEST, MAX_TITLE, render_wechat
from newsletter.wechat.assets import (
    check_image,
    cover_file,
    drop_asset,
    ensure_asset_bytes,
    external_images,
    fetch_image,
    swap_images,
)
from newsletter.wechat.client import WeChatClient
from newsletter.wechat.errors import (
    WeChatBusyError,
    WeChatContentError,
    WeChatError,
    WeChatMediaError,
)

__all__ = [
    "LeaseHeld",
    "clientmsgid_for",
    "preview_issue",
    "publish_issue",
    "publish_send",
    "record_publish_result",
    "status",
    "wechat_send_for",
]

log = logging.getLogger("newsletter.wechat")
CST = dt.timezone(dt.timedelta(hours=8))
LEASE = dt.timedelta(minutes=20)
RESUMABLE = frozenset({-1, 45009, 45011, 45066})
STATUS_TEXT = {
    2: "originality check failed (原创校验不通过)",
    3: "ordinary failure (常规失败)",
    4: "rejected by platform review (平台审核不通过)",
    5: "deleted after success",
    6: "banned after success",
}
OnStep = Callable[[str], None]
#: Issue states whose content may leave the console (the approval gate).
RELEASED = frozenset({"approved", "scheduled", "sent"})


class LeaseHeld(StateError):
    """Another run holds the publication's lease."""


def clientmsgid_for(pub_slug: str, number: int) -> str:
    """The mass-send idempotency key of an issue on the wechat channel (≤ 64 characters)."""
    cid = f"nl-{pub_slug}-{number}-wechat"
    if len(cid) > 64:
        cid = f"nl-{hashlib.sha1(pub_slug.encode()).hexdigest()[:20]}-{number}-wechat"
    return cid


def _today() -> str:
    return clock.today_in(CST).isoformat()


# -- the publication row --------------------------------------------------------


def _publication(send_id: int, wx: WeChatSettings) -> int:
    with session_scope() as s:
        send = s.get(Send, send_id)
        if send is None:
            raise NotFound(f"send {send_id} does not exist")
        if send.channel != "wechat":
            raise StateError(f"send {send_id} is an {send.channel} send, not wechat")
        pub = s.scalar(select(WeChatPublication).where(WeChatPublication.send_id == send_id))
        if pub is not None:
            return pub.id
        issue = s.get(Issue, send.issue_id)
        publication = s.get(Publication, send.publication_id)
        assert issue is not None and publication is not None
        pub = WeChatPublication(
            send_id=send_id,
            issue_id=issue.id,
            appid=wx.appid,
            mode=wx.mode,
            variant=wx.variant,
            state="new",
            clientmsgid=clientmsgid_for(publication.slug, issue.number),
            article_urls=[],
            fail_idx=[],
            article_titles=[],
        )
        s.add(pub)
        s.flush()
        return pub.id


def _save(pub_id: int, **values: Any) -> None:
    with session_scope() as s:
        s.execute(
            update(WeChatPublication)
            .where(WeChatPublication.id == pub_id)
            .values(updated_at=utcnow(), **values)
        )


def _load(pub_id: int) -> WeChatPublication:
    with session_scope() as s:
        pub = s.get(WeChatPublication, pub_id)
        assert pub is not None
        s.expunge(pub)
        return pub


def _holder_gone(owner: str) -> bool:
    """True unless ``owner`` (host:pid:nonce) is a live process on this host."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another host: the operator vouches for it with --take-over
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _take_lease(pub_id: int, owner: str, take_over: bool) -> None:
    """Take the lease or raise :class:`LeaseHeld` naming its holder and expiry."""
    if _lease(pub_id, owner):
        return
    held = _load(pub_id)
    holder, until = held.lease_owner or "?", held.lease_until
    until_text = until.strftime("%Y-%m-%d %H:%M:%S UTC") if until else "?"
    if take_over:
        if not _holder_gone(holder):
            raise LeaseHeld(
                f"lease holder {holder} is still running on this host; not taking over / "
                f"持有者 {holder} 仍在运行，不接管"
            )
        log.warning("wechat: publication %s: taking over the lease of %s", pub_id, holder)
        with session_scope() as s:
            s.execute(
                update(WeChatPublication)
                .where(WeChatPublication.id == pub_id, WeChatPublication.lease_owner == holder)
                .values(lease_owner=None, lease_until=None)
            )
        if _lease(pub_id, owner):
            return
        raise LeaseHeld("another run took the lease at the same moment / 租约刚被另一进程取得")
    raise LeaseHeld(
        f"another run ({holder}) holds this WeChat publication until {until_text}; "
        "wait for it, or run `newsletter wechat publish ISSUE --take-over` if it is gone / "
        f"另一进程（{holder}）正在处理此微信发布，租约至 {until_text}；"
        "如该进程已不在，请加 --take-over 接管"
    )


def _release(pub_id: int, owner: str) -> None:
    """Give the lease back, if this run still holds it."""
    with session_scope() as s:
        s.execute(
            update(WeChatPublication)
            .where(WeChatPublication.id == pub_id, WeChatPublication.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


def _lease(pub_id: int, owner: str) -> bool:
    """Take the publication's lease if it is free or expired."""
    now = utcnow()
    with session_scope() as s:
        res = s.execute(
            update(WeChatPublication)
            .where(
                WeChatPublication.id == pub_id,
                or_(WeChatPublication.lease_until.is_(None), WeChatPublication.lease_until < now),
            )
            .values(lease_owner=owner, lease_until=now + LEASE)
        )
        return bool(res.rowcount)  # type: ignore[attr-defined]


def _send_state(send_id: int, state: str, error: str | None = None) -> None:
    values: dict[str, Any] = {"state": state, "error": error, "updated_at": utcnow()}
    if state == "sending":
        values["started_at"] = utcnow()
        values["finished_at"] = None
    if state in ("finished", "failed"):
        values["finished_at"] = utcnow()
    with session_scope() as s:
        s.execute(
            update(Send).where(Send.id == send_id, Send.state != "cancelled").values(**values)
        )


# -- the steps ----------------------------------------------------------------------


class _Run:
    """One pass over the steps of one publication."""

    def __init__(
        self, pub_id: int, client: WeChatClient, wx: WeChatSettings, on_step: OnStep | None
    ) -> None:
        self.pub_id, self.client, self.wx = pub_id, client, wx
        self.on_step = on_step or (lambda _state: None)
        pub = _load(pub_id)
        with session_scope() as s:
            issue = s.get(Issue, pub.issue_id)
            publication = s.get(Publication, issue.publication_id) if issue else None
            assert issue is not None and publication is not None
            # The approved version, verified: its source and the bytes sealed with it;
            # the issue's folder is never read here.
            sealed = sealed_version(s, issue)
            if sealed is None:
                raise StateError(
                    f"issue #{issue.number} is not approved / 第{issue.number}期尚未审核"
                )
            self.sealed = sealed
            doc = sealed.parse(issue.source_text)
            ctx = context_for(publication)
            table = publication.zh_hant_table or "s2t"
        self.doc = to_variant(doc, pub.variant, table=table)
        self.articles = render_wechat(self.doc, ctx)

    def step(self, state: str, **values: Any) -> None:
        _save(self.pub_id, state=state, **values)
        self.on_step(state)

    def assets(self) -> tuple[dict[str, str], str]:
        """(sha256 → content URL, cover media_id); uploads what the account lacks.

        Every local image and the cover are the sealed bytes (verified when the run began).
        All of them are checked (type from the bytes, size per endpoint) before the first
        upload, so a bad image stops the run with nothing uploaded, naming the file and
        the article or the cover.
        """
        names = {a.sha256: Path(a.ref).name for a in self.sealed.assets}
        body: dict[str, tuple[bytes, str, tuple[str, str]]] = {}
        for i, art in enumerate(self.articles, start=1):
            item = (f"第{i}篇《{art.title}》", f"article {i} 《{art.title}》")
            for h in art.image_hashes:
                if h in body:
                    continue
                if h in art.inline_images:
                    body[h] = (art.inline_images[h], "subscribe-qr.png", item)
                elif h in self.sealed.blobs:
                    body[h] = (self.sealed.blobs[h], names[h], item)
                else:
                    raise WeChatMediaError(
                        f"{item[1]}: image {h[:12]}… is not in the sealed version",
                        zh=f"{item[0]}：图片 {h[:12]}… 不在已封存的版本中",
                    )
        cover = self.sealed.cover()
        if cover is None:  # no cover: the first sealed body image, else the default
            cover = next((a for a in self.sealed.assets if a.kind == "image"), None)
        cover_item = ("封面", "the cover")
        if cover is not None:
            cover_data, cover_name = self.sealed.blobs[cover.sha256], names[cover.sha256]
        else:
            path = cover_file(self.doc, None, self.wx.default_cover)
            cover_data, cover_name = path.read_bytes(), path.name
        for data, name, item in body.values():
            check_image(data, name, "content", item)
        check_image(cover_data, cover_name, "thumb", cover_item)
        urls = {
            h: ensure_asset_bytes(self.client, data, name, "content", item).url
            for h, (data, name, item) in body.items()
        }
        thumb = ensure_asset_bytes(self.client, cover_data, cover_name, "thumb", cover_item)
        assert thumb.media_id is not None
        self.cover_hash = thumb.sha256
        return urls, thumb.media_id

    def external(self) -> dict[str, str]:
        """External image URL → WeChat URL: each fetched and uploaded (once per hash)."""
        out: dict[str, str] = {}
        for i, art in enumerate(self.articles, start=1):
            item = (f"第{i}篇《{art.title}》", f"article {i} 《{art.title}》")
            for url in external_images(art.content):
                if url not in out:
                    data, name = fetch_image(url, allow_private=self.wx.fetch_private_images)
                    out[url] = ensure_asset_bytes(self.client, data, name, "content", item).url
        return out

    def payload(self, urls: dict[str, str], thumb: str) -> list[dict[str, Any]]:
        out = []
        external = self.external()
        for i, a in enumerate(self.articles, start=1):
            content = swap_images(a.content, urls)
            for src, wx_url in external.items():
                content = content.replace(f'src="{src}"', f'src="{wx_url}"')
            if external_images(content):
                raise WeChatMediaError(f"article {i} still holds an external image (bug)")
            if (
                len(content) >= 20_000
                or len(content.encode()) >= 1_000_000
                or len(a.title) > MAX_TITLE
                or len(a.digest) > MAX_DIGEST
            ):
                raise WeChatContentError(
                    f"article {i} 《{a.title}》 breaks a WeChat limit after "
                    "image URLs were swapped in (renderer bug)"
                )
            out.append(
                {
                    "title": a.title,
                    "author": a.author,
                    "digest": a.digest,
                    "content": content,
                    "content_source_url": a.content_source_url,
                    "thumb_media_id": thumb,
                    "need_open_comment": self.wx.need_open_comment,
                    "only_fans_can_comment": self.wx.only_fans_can_comment,
                }
            )
        if not 0 < len(out) <= MAX_ARTICLES:
            raise WeChatContentError(f"{len(out)} articles; a draft holds 1 to {MAX_ARTICLES}")
        return out

    def find_draft(self, payload: list[dict[str, Any]]) -> str | None:
        """Our draft, if a crashed run created it: same titles, digests, links and cover."""
        keys = ("title", "digest", "content_source_url", "thumb_media_id")
        want = [[a[k] for k in keys] for a in payload]
        items = self.client.draft_batchget(0, 20).get("item", [])
        for item in items:
            news = item.get("content", {}).get("news_item", [])
            if [[a.get(k) for k in keys] for a in news] == want:
                return str(item["media_id"])
        return None

    def draft(self, pub: WeChatPublication) -> str:
        """The media_id of a draft holding exactly the current content (made if needed)."""
        urls, thumb = self.assets()
        payload = self.payload(urls, thumb)
        fingerprint = _fingerprint(payload)
        if pub.draft_media_id:
            if pub.draft_fingerprint == fingerprint:
                return pub.draft_media_id
            if pub.publish_id or pub.msg_id or pub.state in ("submitting", "mass_sending"):
                raise StateError(
                    "the issue changed after WeChat took its draft (a publish or a push is "
                    "under way or done); the change is not sent. Make a new issue for it / "
                    "草稿已提交微信后内容又有改动，改动不会发出"
                )
            old = pub.draft_media_id
            new_id = self.client.draft_add(payload)
            self.drafted(new_id, payload)
            log.info("wechat: content changed; new draft %s replaces %s", new_id, old)
            try:
                self.client.draft_delete(old)
            except WeChatError as exc:  # gone already, or removed by hand
                log.info("wechat: old draft %s not deleted: %s", old, exc)
            return new_id
        self.step("assets")
        media_id = self.find_draft(payload) if pub.state == "drafting" else None
        if media_id is None:
            _save(self.pub_id, state="drafting", draft_fingerprint=fingerprint)
            try:
                media_id = self.client.draft_add(payload)
            except WeChatMediaError as exc:
                if exc.errcode != 40007:
                    raise
                log.warning("wechat: cover media_id unknown to WeChat, uploading it again")
                drop_asset(self.client.appid, self.cover_hash, "thumb")
                urls, thumb = self.assets()
                payload = self.payload(urls, thumb)
                media_id = self.client.draft_add(payload)
        self.drafted(media_id, payload)
        return media_id

    def drafted(self, media_id: str, payload: list[dict[str, Any]]) -> None:
        """Record the draft WeChat holds, with the fingerprint of exactly that payload."""
        self.step(
            "drafted",
            draft_media_id=media_id,
            draft_fingerprint=_fingerprint(payload),
            article_count=len(payload),
            article_titles=[a["title"] for a in payload],
        )

    def reconcile_submit(self, media_id: str) -> bool:
        """After a submit with no answer: True when WeChat took it (now recorded).

        A draft still in the draft box was not published, so it may be submitted
        again (counted in ``at_risk``). A draft gone from the box was taken by the
        lost submit: its publish is looked up in ``freepublish/batchget``.
        """
        if self.client.draft_get(media_id) is not None:
            log.warning("wechat: draft %s is still in the box; submitting it again", media_id)
            pub = _load(self.pub_id)
            _save(self.pub_id, at_risk=(pub.at_risk or 0) + 1)
            return False
        want = [[a.title, a.content_source_url] for a in self.articles]
        deadline = time.monotonic() + self.wx.poll_timeout
        while True:
            for item in self.client.freepublish_batchget(0, 20).get("item", []):
                news = item.get("content", {}).get("news_item", [])
                if [[a.get("title"), a.get("content_source_url")] for a in news] == want:
                    article_id = str(item.get("article_id", "")) or None
                    urls = [str(a.get("url", "")) for a in news]
                    if article_id and not all(urls):  # the page came without them
                        got = self.client.freepublish_getarticle(article_id)
                        urls = [str(a.get("url", "")) for a in got.get("news_item", [])]
                    # the publish_id is not in batchget: WeChat's PUBLISHJOBFINISH event
                    # brings it (record_publish_result matches it by article_id)
                    _save(
                        self.pub_id,
                        state="published",
                        publish_status=0,
                        article_id=article_id,
                        article_urls=urls,
                        sent_date=_load(self.pub_id).sent_date or _today(),
                        error=None,
                    )
                    log.info("wechat: the lost submit of %s was published; recorded", media_id)
                    return True
            if time.monotonic() > deadline:
                raise WeChatBusyError(
                    "the draft was submitted by an earlier run whose answer was lost, and its "
                    "publish is not finished yet; re-run later (nothing is submitted twice) / "
                    "上次提交的发布尚未完成，请稍后重试（不会重复发布）",
                    api="/cgi-bin/freepublish/batchget",
                )
            self.client.sleep(self.wx.poll_interval)

    def publish(self, pub: WeChatPublication, media_id: str) -> bool:
        """True when published; False when still publishing after poll_timeout."""
        if pub.publish_status == 0:
            return True
        if not pub.publish_id and pub.state == "submitting" and self.reconcile_submit(media_id):
            self.on_step("published")
            return True
        if not pub.publish_id:
            _save(self.pub_id, state="submitting")
            publish_id, data_id = self.client.freepublish_submit(media_id)
            _save(
                self.pub_id,
                state="publishing",
                publish_id=publish_id,
                publish_msg_data_id=data_id or None,
                sent_date=_today(),
            )
            pub = _load(self.pub_id)
        deadline = time.monotonic() + self.wx.poll_timeout
        while True:
            current = _load(self.pub_id)
            if current.publish_status not in (None, 1):  # the callback got there first
                break
            assert pub.publish_id is not None
            record_publish_result(pub.publish_id, self.client.freepublish_get(pub.publish_id))
            if _load(self.pub_id).publish_status not in (None, 1):
                break
            if time.monotonic() > deadline:
                _save(
                    self.pub_id,
                    error=f"{self.wx.poll_timeout:.0f} 秒后仍在发布中，请稍后重新运行或等待回调 / "
                    f"still publishing after {self.wx.poll_timeout:.0f}s; "
                    "re-run `newsletter wechat publish` or wait for the callback",
                )
                return False
            self.client.sleep(self.wx.poll_interval)
        final = _load(self.pub_id)
        if final.state == "failed":
            raise _Stop()
        self.on_step("published")
        return True

    def mass_send(self, pub: WeChatPublication, media_id: str) -> None:
        if not pub.msg_id:
            _save(self.pub_id, state="mass_sending")
            r = self.client.mass_sendall(media_id, pub.clientmsgid)
            if r["duplicate"]:
                log.info("wechat: clientmsgid %s was already sent (45065)", pub.clientmsgid)
                r["msg_data_id"] = r["msg_data_id"] or _known_data_id(pub)
            _save(
                self.pub_id,
                msg_id=r["msg_id"],
                msg_data_id=r["msg_data_id"] or None,
                sent_date=pub.sent_date or _today(),
            )
            self.step("mass_sent")
            pub = _load(self.pub_id)
        try:
            assert pub.msg_id is not None
            _save(self.pub_id, mass_status=self.client.mass_get(pub.msg_id))
        except WeChatError as exc:  # status is informative only
            log.warning("wechat: mass/get failed: %s", exc)


def _fingerprint(payload: list[dict[str, Any]]) -> str:
    """The hash of a draft's articles: what WeChat would show, byte for byte."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _known_data_id(pub: WeChatPublication) -> str | None:
    """The msg_data_id of an earlier push with the same clientmsgid (45065 hides it)."""
    with session_scope() as s:
        return s.scalar(
            select(WeChatPublication.msg_data_id).where(
                WeChatPublication.clientmsgid == pub.clientmsgid,
                WeChatPublication.id != pub.id,
                WeChatPublication.msg_data_id.is_not(None),
            )
        )


class _Stop(Exception):
    """The publication reached a final failed state (already recorded)."""


def record_publish_result(publish_id: str, data: dict[str, Any]) -> bool:
    """Store a ``freepublish/get`` answer or a PUBLISHJOBFINISH event. True if it was new.

    Idempotent: a final status is recorded once; later reports are ignored.
    """
    status_code = int(data.get("publish_status", 1))
    article_id = str(data.get("article_id") or "")
    with session_scope() as s:
        pub = s.scalar(select(WeChatPublication).where(WeChatPublication.publish_id == publish_id))
        if pub is None and publish_id and article_id:
            # A publish recovered through freepublish/batchget (its submit answer was
            # lost) knows its article but not its publish_id: WeChat's event names both.
            found = s.scalar(
                select(WeChatPublication).where(
                    WeChatPublication.article_id == article_id,
                    WeChatPublication.publish_id.is_(None),
                )
            )
            if found is not None:
                found.publish_id = publish_id
                detail = data.get("article_detail") or {}
                urls = [str(i.get("article_url", "")) for i in detail.get("item", [])]
                if any(urls):
                    found.article_urls = urls
                found.updated_at = utcnow()
                log.info("wechat: publish_id %s recovered for article %s", publish_id, article_id)
            return False
        if pub is None or pub.publish_status not in (None, 1):
            return False
        pub.publish_status = status_code
        if status_code == 1:
            return False
        detail = data.get("article_detail") or {}
        pub.article_id = str(data.get("article_id") or "") or None
        pub.article_urls = [str(i.get("article_url", "")) for i in detail.get("item", [])]
        pub.fail_idx = [int(i) for i in data.get("fail_idx") or []]
        if status_code == 0:
            pub.state, pub.error, pub.errcode = "published", None, None
        else:
            titles = pub.article_titles or []
            which = (
                ", ".join(
                    f"#{i} 《{titles[i - 1]}》" if 0 < i <= len(titles) else f"#{i}"
                    for i in pub.fail_idx
                )
                or "(WeChat named no article)"
            )
            pub.state, pub.failed_step = "failed", "publishing"
            pub.error = (
                f"微信发布 {publish_id} 以状态 {status_code} 结束，失败文章：{which}；"
                "修改后运行 newsletter wechat publish ISSUE --retry / "
                f"WeChat publish {publish_id} ended with status {status_code}: "
                f"{STATUS_TEXT.get(status_code, 'unknown')}; failed article(s): {which}. "
                "Fix them and run `newsletter wechat publish ISSUE --retry`."
            )
            send_id = pub.send_id
        pub.updated_at = utcnow()
    if status_code != 0:
        _send_state(send_id, "failed", pub.error)
    return True


# -- entry points ------------------------------------------------------------------------


def publish_send(
    send_id: int,
    *,
    settings: WeChatSettings | None = None,
    client: WeChatClient | None = None,
    retry: bool = False,
    until: str | None = None,
    on_step: OnStep | None = None,
    take_over: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the WeChat channel of ``send_id``; returns :func:`status`.

    ``until="drafted"`` stops after the draft (used by previews). A failed
    publication is left alone unless ``retry``. WeChat errors are recorded, not
    raised: -1, 45009 and network trouble keep the step resumable, anything else
    marks the channel failed.  Other exceptions (a crash) propagate; a re-run resumes.
    """
    wx = settings or get_wechat_settings()
    pub_id = _publication(send_id, wx)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    pub = _load(pub_id)
    if pub.state == "done" or (pub.state == "failed" and not retry):
        return status(send_id)
    _require_approved(pub.issue_id)
    _take_lease(pub_id, owner, take_over)
    own_client = client is None
    cl = client or WeChatClient(wx)
    try:
        if pub.state == "failed":
            _reset_failed(pub)
        _run(send_id, pub_id, cl, wx, until, on_step)
    except SealError as exc:  # refused before anything was uploaded
        _save(pub_id, error=str(exc))
        report_broken(exc)
        raise
    finally:
        _release(pub_id, owner)
        if own_client:
            cl.close()
    return status(send_id)


def _require_approved(issue_id: int) -> None:
    """The approval gate: only approved content leaves the console."""
    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        if issue is None:
            raise NotFound(f"issue {issue_id} does not exist / 期刊不存在")
        if issue.status not in RELEASED:
            raise StateError(
                f"issue #{issue.number} is {issue.status}, not approved: approve it first "
                f"(`newsletter issue approve`) / 第{issue.number}期尚未审核通过，请先审核"
            )


def _reset_failed(pub: WeChatPublication) -> None:
    if pub.failed_step == "publishing":
        state = "drafted"
        _save(pub.id, publish_id=None, publish_status=None, fail_idx=[], article_urls=[])
    elif pub.draft_media_id:
        state = "drafted"
    else:
        state = "new"
    _save(pub.id, state=state, failed_step=None, error=None, errcode=None)


def _run(
    send_id: int,
    pub_id: int,
    client: WeChatClient,
    wx: WeChatSettings,
    until: str | None,
    on_step: OnStep | None,
) -> None:
    pub = _load(pub_id)
    try:
        run = _Run(pub_id, client, wx, on_step)
        media_id = run.draft(pub)
        if until == "drafted":
            return
        _send_state(send_id, "sending")
        pub = _load(pub_id)
        if pub.mode in ("publish", "both") and not run.publish(pub, media_id):
            return
        if pub.mode in ("mass_send", "both"):
            run.mass_send(_load(pub_id), media_id)
        run.step("done", error=None, errcode=None)
        _send_state(send_id, "finished")
    except _Stop:
        return
    except WeChatError as exc:
        current = _load(pub_id)
        resumable = isinstance(exc, WeChatBusyError) or exc.errcode in RESUMABLE
        # recorded on the publication and shown once by whoever runs it (status, CLI)
        log.info("wechat: send %s stopped at %s: %s", send_id, current.state, exc)
        if resumable:
            _save(pub_id, error=str(exc), errcode=exc.errcode)
        else:
            _save(
                pub_id,
                state="failed",
                failed_step=current.state,
                error=str(exc),
                errcode=exc.errcode,
            )
            _send_state(send_id, "failed", str(exc))


def status(send_id: int) -> dict[str, Any]:
    """Every step of the WeChat channel of ``send_id``, for ``send status`` and the CLI."""
    with session_scope() as s:
        pub = s.scalar(select(WeChatPublication).where(WeChatPublication.send_id == send_id))
        send = s.get(Send, send_id)
        if send is None:
            raise NotFound(f"send {send_id} does not exist")
        if pub is None:
            return {
                "send_id": send_id,
                "channel": send.channel,
                "send_state": send.state,
                "state": "not started",
            }
        titles = pub.article_titles or []
        return {
            "send_id": send_id,
            "issue_id": pub.issue_id,
            "channel": "wechat",
            "send_state": send.state,
            "mode": pub.mode,
            "state": pub.state,
            "failed_step": pub.failed_step,
            "error": pub.error,
            "errcode": pub.errcode,
            "clientmsgid": pub.clientmsgid,
            "draft": {
                "media_id": pub.draft_media_id,
                "articles": pub.article_count,
                "titles": titles,
            },
            "publish": {
                "publish_id": pub.publish_id,
                "status": pub.publish_status,
                "status_text": STATUS_TEXT.get(pub.publish_status or 0, "")
                if pub.publish_status not in (None, 0, 1)
                else {None: "", 0: "published", 1: "publishing"}[pub.publish_status],
                "article_urls": pub.article_urls,
                "msg_data_id": pub.publish_msg_data_id,
            },
            "failed_articles": [
                {"index": i, "title": titles[i - 1] if 0 < i <= len(titles) else ""}
                for i in pub.fail_idx or []
            ],
            "mass_send": {
                "msg_id": pub.msg_id,
                "msg_data_id": pub.msg_data_id,
                "status": pub.mass_status,
            },
            "sent_date": pub.sent_date,
            "updated_at": pub.updated_at.isoformat(),
        }


def wechat_send_for(
    issue_ref: str | int, *, settings: WeChatSettings | None = None, create: bool = True
) -> int:
    """The issue's wechat-channel send (not cancelled), created as a draft if there is none."""
    wx = settings or get_wechat_settings()
    with session_scope() as s:
        issue = get_issue(s, issue_ref)
        send = s.scalars(
            select(Send)
            .where(Send.issue_id == issue.id, Send.channel == "wechat", Send.state != "cancelled")
            .order_by(Send.id.desc())
        ).first()
        if send is None and not create:
            raise NotFound(f"issue {issue_ref} has no WeChat send yet: run `wechat publish`")
        if send is None:
            send = Send(
                publication_id=issue.publication_id,
                issue_id=issue.id,
                channel="wechat",
                list_id=None,
                variant_rule=wx.variant,
                state="draft",
            )
            s.add(send)
            s.flush()
        return send.id


def publish_issue(issue_ref: str | int, **kwargs: Any) -> dict[str, Any]:
    """``wechat publish ISSUE``: publish_send on the issue's wechat send."""
    return publish_send(wechat_send_for(issue_ref, settings=kwargs.get("settings")), **kwargs)


def preview_issue(
    issue_ref: str | int,
    openid: str,
    *,
    settings: WeChatSettings | None = None,
    client: WeChatClient | None = None,
) -> dict[str, Any]:
    """Send the issue's current draft to one follower (mass/preview).

    ``openid`` is a follower's OpenID, or a WeChat id (towxname) when it does
    not look like one. The draft holds the current approved content: a preview
    after an edit shows the edit.
    """
    wx = settings or get_wechat_settings()
    send_id = wechat_send_for(issue_ref, settings=wx)
    with session_scope() as s:
        send = s.get(Send, send_id)
        assert send is not None
        _require_approved(send.issue_id)
    cl = client or WeChatClient(wx)
    try:
        out = publish_send(send_id, settings=wx, client=cl, until="drafted")
        media_id = out.get("draft", {}).get("media_id")
        if not media_id:
            raise StateError(f"no draft for the preview: {out.get('error')}")
        cl.mass_preview(media_id, openid)
    finally:
        if client is None:
            cl.close()
    out["preview"] = {"openid": openid, "media_id": media_id}
    return out
