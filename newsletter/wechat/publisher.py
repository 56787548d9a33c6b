"""Publishing one issue to WeChat as the wechat channel of a send: the state machine.

Steps, each stored in ``wechat_publication`` (:mod:`.publication`) before the next begins:

1. ``assets``: content images (uploadimg) and the cover (add_material), once
   per account and content hash (:mod:`.assets`);
2. ``drafted``: ``draft/add`` with the renderer's articles, made and kept equal to the
   approved content by :mod:`.draft`;
3. ``published`` (modes publish, both): ``freepublish/submit``, then
   ``freepublish/get`` until the status is final (or the callback reports it).
   Status 2, 3, 4, 5 or 6 fails the channel with the failed article indexes;
4. ``mass_sent`` (modes mass_send, both): ``message/mass/sendall`` with a
   ``clientmsgid`` derived from the publication, issue number and channel, so a
   re-run, a second send of the same issue or a crash at any instant never
   pushes twice (45065 is recorded as success);
5. ``done``.

Guarantees:

* **Only approved content leaves.** Only an approved issue is previewed, published or
  mass-sent, and only its sealed version (:mod:`newsletter.issues.seal`). A broken seal
  refuses (``seal-broken``) before anything is uploaded, and ops are alerted.
* **Each step once.** Re-running :func:`publish_send` resumes at the first
  unfinished step and never repeats a finished one. A submit whose answer was
  lost (a timeout, a crash) is looked up before anything is re-submitted: a
  draft that is no longer in the draft box was taken by that submit, and the
  publish is found in ``freepublish/batchget``; a draft still in the box was
  not published and is submitted again. The window that remains is WeChat
  accepting a submit without taking the draft out of the box at once; each
  re-submit after an unknown outcome is therefore counted in ``at_risk``.
* **One run at a time** per publication (:mod:`.lease`).
* A WeChat failure is recorded on this send only, so the email channel is
  never held back.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

from sqlalchemy import select

from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound, SealError, StateError
from newsletter.core.wechat_settings import WeChatSettings, get_wechat_settings
from newsletter.issues.seal import report_broken
from newsletter.issues.store import RELEASED, get_issue
from newsletter.models import Issue, Send
from newsletter.models.wechat import WeChatPublication
from newsletter.wechat.client import WeChatClient
from newsletter.wechat.draft import Draft, OnStep
from newsletter.wechat.errors import WeChatBusyError, WeChatError
from newsletter.wechat.lease import release, take_lease
from newsletter.wechat.publication import (
    STATUS_TEXT,
    known_data_id,
    load,
    publication_for,
    record_publish_result,
    save,
    send_state,
    today,
)

__all__ = [
    "preview_issue",
    "publish_issue",
    "publish_send",
    "status",
    "wechat_send_for",
]

log = logging.getLogger("newsletter.wechat")
RESUMABLE = frozenset({-1, 45009, 45011, 45066})


class _Run(Draft):
    """One pass over the steps of one publication, after its draft."""

    def reconcile_submit(self, media_id: str) -> bool:
        """After a submit with no answer: True when WeChat took it (now recorded).

        A draft still in the draft box was not published, so it may be submitted
        again (counted in ``at_risk``). A draft gone from the box was taken by the
        lost submit: its publish is looked up in ``freepublish/batchget``.
        """
        if self.client.draft_get(media_id) is not None:
            log.warning("wechat: draft %s is still in the box; submitting it again", media_id)
            pub = load(self.pub_id)
            save(self.pub_id, at_risk=(pub.at_risk or 0) + 1)
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
                    save(
                        self.pub_id,
                        state="published",
                        publish_status=0,
                        article_id=article_id,
                        article_urls=urls,
                        sent_date=load(self.pub_id).sent_date or today(),
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
            save(self.pub_id, state="submitting")
            publish_id, data_id = self.client.freepublish_submit(media_id)
            save(
                self.pub_id,
                state="publishing",
                publish_id=publish_id,
                publish_msg_data_id=data_id or None,
                sent_date=today(),
            )
            pub = load(self.pub_id)
        deadline = time.monotonic() + self.wx.poll_timeout
        while True:
            current = load(self.pub_id)
            if current.publish_status not in (None, 1):  # the callback got there first
                break
            assert pub.publish_id is not None
            record_publish_result(pub.publish_id, self.client.freepublish_get(pub.publish_id))
            if load(self.pub_id).publish_status not in (None, 1):
                break
            if time.monotonic() > deadline:
                save(
                    self.pub_id,
                    error=f"{self.wx.poll_timeout:.0f} 秒后仍在发布中，请稍后重新运行或等待回调 / "
                    f"still publishing after {self.wx.poll_timeout:.0f}s; "
                    "re-run `newsletter wechat publish` or wait for the callback",
                )
                return False
            self.client.sleep(self.wx.poll_interval)
        final = load(self.pub_id)
        if final.state == "failed":
            raise _Stop()
        self.on_step("published")
        return True

    def mass_send(self, pub: WeChatPublication, media_id: str) -> None:
        if not pub.msg_id:
            save(self.pub_id, state="mass_sending")
            r = self.client.mass_sendall(media_id, pub.clientmsgid)
            if r["duplicate"]:
                log.info("wechat: clientmsgid %s was already sent (45065)", pub.clientmsgid)
                r["msg_data_id"] = r["msg_data_id"] or known_data_id(pub)
            save(
                self.pub_id,
                msg_id=r["msg_id"],
                msg_data_id=r["msg_data_id"] or None,
                sent_date=pub.sent_date or today(),
            )
            self.step("mass_sent")
            pub = load(self.pub_id)
        try:
            assert pub.msg_id is not None
            save(self.pub_id, mass_status=self.client.mass_get(pub.msg_id))
        except WeChatError as exc:  # status is informative only
            log.warning("wechat: mass/get failed: %s", exc)


class _Stop(Exception):
    """The publication reached a final failed state (already recorded)."""


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
    pub_id = publication_for(send_id, wx)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    pub = load(pub_id)
    if pub.state == "done" or (pub.state == "failed" and not retry):
        return status(send_id)
    _require_approved(pub.issue_id)
    take_lease(pub_id, owner, take_over)
    own_client = client is None
    cl = client or WeChatClient(wx)
    try:
        if pub.state == "failed":
            _reset_failed(pub)
        _run(send_id, pub_id, cl, wx, until, on_step)
    except SealError as exc:  # refused before anything was uploaded
        save(pub_id, error=str(exc))
        report_broken(exc)
        raise
    finally:
        release(pub_id, owner)
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
        save(pub.id, publish_id=None, publish_status=None, fail_idx=[], article_urls=[])
    elif pub.draft_media_id:
        state = "drafted"
    else:
        state = "new"
    save(pub.id, state=state, failed_step=None, error=None, errcode=None)


def _run(
    send_id: int,
    pub_id: int,
    client: WeChatClient,
    wx: WeChatSettings,
    until: str | None,
    on_step: OnStep | None,
) -> None:
    pub = load(pub_id)
    try:
        run = _Run(pub_id, client, wx, on_step)
        media_id = run.draft(pub)
        if until == "drafted":
            return
        send_state(send_id, "sending")
        pub = load(pub_id)
        if pub.mode in ("publish", "both") and not run.publish(pub, media_id):
            return
        if pub.mode in ("mass_send", "both"):
            run.mass_send(load(pub_id), media_id)
        run.step("done", error=None, errcode=None)
        send_state(send_id, "finished")
    except _Stop:
        return
    except WeChatError as exc:
        current = load(pub_id)
        resumable = isinstance(exc, WeChatBusyError) or exc.errcode in RESUMABLE
        # recorded on the publication and shown once by whoever runs it (status, CLI)
        log.info("wechat: send %s stopped at %s: %s", send_id, current.state, exc)
        if resumable:
            save(pub_id, error=str(exc), errcode=exc.errcode)
        else:
            save(
                pub_id,
                state="failed",
                failed_step=current.state,
                error=str(exc),
                errcode=exc.errcode,
            )
            send_state(send_id, "failed", str(exc))


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
