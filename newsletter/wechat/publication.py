"""The ``wechat_publication`` row of a send: created once, saved after every step, read by
whoever resumes, and updated by WeChat's answer to a publish.

Every step of the publisher is stored here before the next begins, so a re-run resumes
from the row; :func:`record_publish_result` is the one writer of a publish's outcome,
whether ``freepublish/get`` or the callback reports it first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

from sqlalchemy import select, update

from newsletter.core import clock
from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound, StateError
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.models import Issue, Publication, Send, utcnow
from newsletter.models.wechat import WeChatPublication

__all__ = [
    "STATUS_TEXT",
    "clientmsgid_for",
    "fingerprint",
    "known_data_id",
    "load",
    "publication_for",
    "record_publish_result",
    "save",
    "send_state",
    "today",
]

log = logging.getLogger("newsletter.wechat")
CST = dt.timezone(dt.timedelta(hours=8))
STATUS_TEXT = {
    2: "originality check failed (原创校验不通过)",
    3: "ordinary failure (常规失败)",
    4: "rejected by platform review (平台审核不通过)",
    5: "deleted after success",
    6: "banned after success",
}


def clientmsgid_for(pub_slug: str, number: int) -> str:
    """The mass-send idempotency key of an issue on the wechat channel (≤ 64 characters)."""
    cid = f"nl-{pub_slug}-{number}-wechat"
    if len(cid) > 64:
        cid = f"nl-{hashlib.sha1(pub_slug.encode()).hexdigest()[:20]}-{number}-wechat"
    return cid


def today() -> str:
    """The date WeChat counts a push on (China time)."""
    return clock.today_in(CST).isoformat()


def fingerprint(payload: list[dict[str, Any]]) -> str:
    """The hash of a draft's articles: what WeChat would show, byte for byte."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def publication_for(send_id: int, wx: WeChatSettings) -> int:
    """The id of the send's publication row, created on the first run."""
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


def save(pub_id: int, **values: Any) -> None:
    with session_scope() as s:
        s.execute(
            update(WeChatPublication)
            .where(WeChatPublication.id == pub_id)
            .values(updated_at=utcnow(), **values)
        )


def load(pub_id: int) -> WeChatPublication:
    with session_scope() as s:
        pub = s.get(WeChatPublication, pub_id)
        assert pub is not None
        s.expunge(pub)
        return pub


def send_state(send_id: int, state: str, error: str | None = None) -> None:
    """Move the wechat send along with its publication (a cancelled send stays cancelled)."""
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


def known_data_id(pub: WeChatPublication) -> str | None:
    """The msg_data_id of an earlier push with the same clientmsgid (45065 hides it)."""
    with session_scope() as s:
        return s.scalar(
            select(WeChatPublication.msg_data_id).where(
                WeChatPublication.clientmsgid == pub.clientmsgid,
                WeChatPublication.id != pub.id,
                WeChatPublication.msg_data_id.is_not(None),
            )
        )


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
        send_state(send_id, "failed", pub.error)
    return True
