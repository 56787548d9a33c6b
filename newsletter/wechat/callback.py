"""The account's server URL (服务器配置): ``GET``/``POST /wechat/callback``.

Guarantees: every request must carry a valid WeChat signature
(``sha1`` of the sorted callback token, ``timestamp`` and ``nonce``) with a
timestamp within 10 minutes, or it is answered 403 and ignored.  XML with a
DOCTYPE or entities is refused.  ``PUBLISHJOBFINISH`` records the publish result
(idempotently, shared with polling); any other message is acknowledged with
``success`` so WeChat does not retry it.  Plaintext and compatible modes only:
the safe (encrypted) mode is not supported.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import xml.etree.ElementTree as ET
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from newsletter.core import clock
from newsletter.core.wechat_settings import get_wechat_settings

__all__ = ["parse_event", "router", "signature"]

log = logging.getLogger("newsletter.wechat")
router = APIRouter(prefix="/wechat", tags=["wechat"])
MAX_SKEW = 600


def signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's signature: sha1 of the three values sorted and concatenated."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def _verify(sig: str, timestamp: str, nonce: str) -> None:
    token = get_wechat_settings().token.get_secret_value()
    if not token:
        raise HTTPException(404, "WeChat callback not configured (NEWSLETTER_WECHAT_TOKEN)")
    fresh = timestamp.isdigit() and abs(clock.timestamp() - int(timestamp)) <= MAX_SKEW
    if not fresh or not hmac.compare_digest(signature(token, timestamp, nonce), sig):
        raise HTTPException(403, "bad signature")


def parse_event(xml: bytes) -> dict[str, Any]:
    """The fields of a pushed message; ``PublishEventInfo`` as freepublish/get names them."""
    if b"<!DOCTYPE" in xml.upper() or b"<!ENTITY" in xml.upper():
        raise ValueError("DOCTYPE/ENTITY not allowed")
    root = ET.fromstring(xml)
    out: dict[str, Any] = {c.tag: (c.text or "").strip() for c in root if len(c) == 0}
    info = root.find("PublishEventInfo")
    if info is not None:
        items = [
            {
                "idx": int(i.findtext("idx", "0")),
                "article_url": (i.findtext("article_url") or "").strip(),
            }
            for i in info.iterfind("article_detail/item")
        ]
        out["publish"] = {
            "publish_id": (info.findtext("publish_id") or "").strip(),
            "publish_status": int(info.findtext("publish_status", "1")),
            "article_id": (info.findtext("article_id") or "").strip(),
            "article_detail": {"count": len(items), "item": items},
            "fail_idx": [int(e.text or 0) for e in info.iterfind("fail_idx")],
        }
    return out


@router.get("/callback", response_class=PlainTextResponse)
def verify_url(
    signature_: str = Query("", alias="signature"),
    timestamp: str = "",
    nonce: str = "",
    echostr: str = "",
) -> str:
    """WeChat's server-URL check: echo ``echostr`` when the signature is right."""
    _verify(signature_, timestamp, nonce)
    return echostr


@router.post("/callback", response_class=PlainTextResponse)
async def receive(
    request: Request,
    signature_: str = Query("", alias="signature"),
    timestamp: str = "",
    nonce: str = "",
) -> str:
    """Pushed messages and events; PUBLISHJOBFINISH updates the publication."""
    _verify(signature_, timestamp, nonce)
    body = await request.body()
    if len(body) > 256_000:
        raise HTTPException(413, "too large")
    try:
        event = parse_event(body)
    except (ET.ParseError, ValueError) as exc:
        raise HTTPException(400, "malformed XML") from exc
    if event.get("Event") == "PUBLISHJOBFINISH" and "publish" in event:
        from newsletter.wechat.publication import record_publish_result

        info = event["publish"]
        new = await run_in_threadpool(record_publish_result, info["publish_id"], info)
        log.info(
            "wechat: PUBLISHJOBFINISH %s status %s (%s)",
            info["publish_id"],
            info["publish_status"],
            "recorded" if new else "already known",
        )
    return "success"
