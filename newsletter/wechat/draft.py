"""The WeChat draft of an approved issue: its sealed content rendered, its images uploaded,
and one draft in WeChat's draft box that holds exactly that content.

What was approved is what followers get: only the sealed version is used (the approved
source and the image and cover bytes stored at approval, verified before each run); the
issue's folder is never read. Every run compares the hash of the rendered articles with
the stored draft's; when they differ a new draft is made and the old one deleted, so a
preview, an edit and a publish push the edit. Content that changes after WeChat took the
draft (a submit or a push is under way or done) is refused, never pushed. The intent
(``drafting`` + a fingerprint) is stored before ``draft/add``, and a run that finds it
without a media_id looks for the draft in ``draft/batchget`` first, so a crash never
leaves two drafts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from newsletter.content.variants import to_variant
from newsletter.core.db import session_scope
from newsletter.core.errors import StateError
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.issues.store import context_for, sealed_version
from newsletter.models import Issue, Publication
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
from newsletter.wechat.errors import WeChatContentError, WeChatError, WeChatMediaError
from newsletter.wechat.publication import fingerprint, load, save

__all__ = ["Draft", "OnStep"]

log = logging.getLogger("newsletter.wechat")
OnStep = Callable[[str], None]


class Draft:
    """The approved content of one publication, rendered, and its draft in WeChat."""

    def __init__(
        self, pub_id: int, client: WeChatClient, wx: WeChatSettings, on_step: OnStep | None
    ) -> None:
        self.pub_id, self.client, self.wx = pub_id, client, wx
        self.on_step = on_step or (lambda _state: None)
        pub = load(pub_id)
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
        save(self.pub_id, state=state, **values)
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
        digest = fingerprint(payload)
        if pub.draft_media_id:
            if pub.draft_fingerprint == digest:
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
            save(self.pub_id, state="drafting", draft_fingerprint=digest)
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
            draft_fingerprint=fingerprint(payload),
            article_count=len(payload),
            article_titles=[a["title"] for a in payload],
        )
