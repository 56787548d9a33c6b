"""Bounce and complaint webhooks: Amazon SES (through SNS) and Postmark.

``POST /webhooks/ses``: Amazon SNS delivers SES notifications.  Every message's
signature is verified before anything else: the signing certificate comes from
``SigningCertURL``, which must be ``https`` on an ``amazonaws.com`` host (SNS
uses ``sns.<region>.amazonaws.com``) and end in ``.pem``; SignatureVersion 1 is
SHA1withRSA and 2 is SHA256withRSA over the canonical string SNS defines.
Certificates are fetched by an injectable function and cached.
``SubscriptionConfirmation`` is recorded in the audit log (with its SubscribeURL,
which an operator opens, or set ``NEWSLETTER_WEBHOOK_SNS_AUTO_CONFIRM=true``);
``Notification`` carries an SES ``Bounce`` (``Permanent`` → hard; ``Transient``
/ ``Undetermined`` → soft) or ``Complaint``.

``POST /webhooks/postmark``: Postmark bounce and spam-complaint webhooks, with
HTTP basic auth (``NEWSLETTER_WEBHOOK_USER`` / ``NEWSLETTER_WEBHOOK_PASSWORD``;
the endpoint refuses everything until both are set).

Both end in the same place as mailed DSNs (:mod:`.bounces`): a hard bounce marks
the delivery ``bounced`` and suppresses the address (``hard_bounce``); a
complaint suppresses it (``complaint``) and records an Event ``complaint``.
The delivery is found from the VERP envelope sender (``mail.source`` for SES)
or a delivery token in the provider's metadata; without one, the address the
(authenticated) provider names is suppressed directly.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select

from newsletter.audience.service import suppress
from newsletter.core.audit import audit
from newsletter.core.db import session_scope
from newsletter.core.errors import TokenError
from newsletter.core.safety.signing import verify
from newsletter.delivery.bounces import BounceResult, Kind, _token_from, apply_result
from newsletter.models import Event

__all__ = [
    "CertCache",
    "SnsError",
    "WebhookSettings",
    "make_router",
    "router",
    "sns_string_to_sign",
    "verify_sns",
]

log = logging.getLogger(__name__)


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSLETTER_WEBHOOK_", extra="ignore")

    user: str = ""
    password: SecretStr = SecretStr("")
    #: Comma-separated SNS topic ARNs to accept; empty accepts any (signed) topic.
    sns_topic_arns: str = ""
    #: GET the SubscribeURL of a verified SubscriptionConfirmation automatically.
    sns_auto_confirm: bool = False


# -- SNS signature ---------------------------------------------------------------


class SnsError(Exception):
    """An SNS message that must be refused (bad signature, bad certificate URL...)."""


_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


def sns_string_to_sign(msg: dict[str, Any]) -> bytes:
    """The canonical string SNS signs: "Key\\nValue\\n" for the type's keys, in order."""
    kind = msg.get("Type")
    keys: tuple[str, ...]
    if kind == "Notification":
        keys = _NOTIFICATION_KEYS
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        keys = _SUBSCRIPTION_KEYS
    else:
        raise SnsError(f"unknown SNS message type {kind!r}")
    out = []
    for k in keys:
        if k == "Subject" and msg.get(k) is None:
            continue  # Subject is signed only when present
        if k not in msg:
            raise SnsError(f"SNS message lacks {k}")
        out.append(f"{k}\n{msg[k]}\n")
    return "".join(out).encode("utf-8")


def check_cert_url(url: str) -> None:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or (
        not host.endswith(".amazonaws.com") and not host.endswith(".amazonaws.com.cn")
    ):
        raise SnsError(f"SigningCertURL must be https on amazonaws.com: {url!r}")
    if not _CERT_HOST.match(host) or parts.port not in (None, 443):
        raise SnsError(f"SigningCertURL host is not an SNS endpoint: {host!r}")
    if not parts.path.endswith(".pem") or parts.query or parts.username or parts.password:
        raise SnsError(f"SigningCertURL is not a certificate path: {url!r}")


def _https_get(url: str) -> bytes:  # pragma: no cover - network
    from newsletter.core.safety.pinned import pinned_client

    # an SNS endpoint is public: connect only to public addresses, the one checked
    with pinned_client(timeout=10.0, follow_redirects=False) as http:
        r = http.get(url)
    r.raise_for_status()
    return r.content


class CertCache:
    """Fetches SNS signing certificates (PEM) through ``fetch`` and keeps them by URL."""

    def __init__(self, fetch: Callable[[str], bytes] | None = None, max_entries: int = 32):
        self.fetch = fetch or _https_get
        self.max_entries = max_entries
        self._certs: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate:
        check_cert_url(url)
        with self._lock:
            cert = self._certs.get(url)
        if cert is not None:
            return cert
        try:
            cert = x509.load_pem_x509_certificate(self.fetch(url))
        except Exception as exc:
            raise SnsError(f"cannot load the signing certificate: {exc}") from exc
        with self._lock:
            if len(self._certs) >= self.max_entries:
                self._certs.pop(next(iter(self._certs)))
            self._certs[url] = cert
        return cert


def verify_sns(msg: dict[str, Any], certs: CertCache) -> None:
    """Raise :class:`SnsError` unless ``msg`` carries a valid SNS signature."""
    version = str(msg.get("SignatureVersion", ""))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise SnsError(f"unsupported SignatureVersion {version!r}")
    try:
        signature = base64.b64decode(str(msg.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SnsError("Signature is not base64") from exc
    cert = certs.get(str(msg.get("SigningCertURL", "")))
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsError("signing certificate does not hold an RSA key")
    try:
        key.verify(signature, sns_string_to_sign(msg), padding.PKCS1v15(), algorithm)
    except InvalidSignature as exc:
        raise SnsError("bad SNS signature") from exc


# -- applying ----------------------------------------------------------------------


def _delivery_from(*candidates: object) -> int | None:
    for c in candidates:
        if not c:
            continue
        if isinstance(c, str) and re.fullmatch(r"d[0-9a-z]+\.[A-Za-z0-9_-]{16}", c):
            try:
                return verify(c, "d").fields[0]
            except TokenError:
                continue
        if (d := _token_from(str(c))) is not None:
            return d
    return None


def _apply(
    kind: Kind,
    address: str,
    *,
    delivery_id: int | None,
    status: str | None,
    diagnostic: str,
    source: str,
    uid: str,
) -> BounceResult:
    r = BounceResult(
        kind,
        delivery_id=delivery_id,
        recipient=address,
        status=status,
        diagnostic=diagnostic[:500],
        source=source,
    )
    if delivery_id is not None:
        applied = apply_result(r, event_uid=uid if kind == "complaint" else None)
        if applied.applied:
            return applied
    if kind == "soft" or not address:
        r.note = r.note or "soft bounce without a delivery: nothing to record"
        return r
    reply = f"{source.upper()} {status or ''} {diagnostic}".strip()[:1000]
    with session_scope() as s:
        suppress(s, address, "hard_bounce" if kind == "hard" else "complaint", note=reply)
        if kind == "complaint" and s.scalar(select(Event.id).where(Event.uid == uid)) is None:
            s.add(Event(uid=uid[:64], kind="complaint", cls="human", rule=source))
    r.applied = True
    r.note = (r.note + "; " if r.note else "") + "applied by address (no delivery token)"
    return r


def _ses_results(note: dict[str, Any]) -> list[BounceResult]:
    kind_name = note.get("notificationType") or note.get("eventType")
    mail = note.get("mail") or {}
    tags = mail.get("tags") or {}
    delivery = _delivery_from(
        mail.get("source"),
        *(tags.get("delivery", []) if isinstance(tags, dict) else []),
        *(h.get("value") for h in mail.get("headers") or [] if isinstance(h, dict)
          and str(h.get("name", "")).lower() in ("return-path", "list-unsubscribe")),
    )  # fmt: skip
    out: list[BounceResult] = []
    if kind_name == "Bounce":
        b = note.get("bounce") or {}
        btype = b.get("bounceType")
        kind: Kind = "hard" if btype == "Permanent" else "soft"
        fid = b.get("feedbackId") or secrets.token_hex(8)
        for rcpt in b.get("bouncedRecipients") or []:
            out.append(_apply(
                kind, str(rcpt.get("emailAddress", "")), delivery_id=delivery,
                status=rcpt.get("status"),
                diagnostic=f"{btype}/{b.get('bounceSubType')} {rcpt.get('diagnosticCode', '')}",
                source="ses", uid=f"ses:{fid}",
            ))  # fmt: skip
    elif kind_name == "Complaint":
        c = note.get("complaint") or {}
        fid = c.get("feedbackId") or secrets.token_hex(8)
        ftype = c.get("complaintFeedbackType") or "abuse"
        if ftype in ("abuse", "fraud"):
            for rcpt in c.get("complainedRecipients") or []:
                out.append(_apply(
                    "complaint", str(rcpt.get("emailAddress", "")), delivery_id=delivery,
                    status=None, diagnostic=f"complaint {ftype}", source="ses",
                    uid=f"ses:{fid}:{rcpt.get('emailAddress', '')}"[:64],
                ))  # fmt: skip
    return out


_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "SpamNotification", "ManuallyDeactivated",
                  "Blocked", "Unsubscribe"}  # fmt: skip
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "MailFrontier", "ChallengeVerification",
                  "SMTPApiError", "InboxPlacement", "Undeliverable", "TemplateRenderingFailed"}  # fmt: skip


def _postmark_result(p: dict[str, Any]) -> BounceResult:
    record = p.get("RecordType")
    btype = str(p.get("Type", ""))
    address = str(p.get("Email", ""))
    meta = p.get("Metadata") or {}
    delivery = _delivery_from(
        meta.get("delivery") if isinstance(meta, dict) else None,
        p.get("Tag"),
        *(h.get("Value") for h in p.get("Headers") or [] if isinstance(h, dict)),
        p.get("Content"),
    )
    uid = f"postmark:{p.get('ID') or secrets.token_hex(8)}"
    diag = f"{btype} {p.get('Description', '')} {p.get('Details', '')}"
    if record == "SpamComplaint" or btype == "SpamComplaint":
        return _apply("complaint", address, delivery_id=delivery, status=None,
                      diagnostic=diag, source="postmark", uid=uid)  # fmt: skip
    if record == "Bounce" and btype in _POSTMARK_HARD:
        return _apply("hard", address, delivery_id=delivery, status=None,
                      diagnostic=diag, source="postmark", uid=uid)  # fmt: skip
    if record == "Bounce" and btype in _POSTMARK_SOFT:
        return _apply("soft", address, delivery_id=delivery, status=None,
                      diagnostic=diag, source="postmark", uid=uid)  # fmt: skip
    return BounceResult("unknown", recipient=address, source="postmark",
                        note=f"ignored {record}/{btype}")  # fmt: skip


# -- the router ---------------------------------------------------------------------

_basic = HTTPBasic(auto_error=False)


def make_router(
    fetch_cert: Callable[[str], bytes] | None = None,
    *,
    confirm: Callable[[str], object] | None = None,
    settings: Callable[[], WebhookSettings] = WebhookSettings,
) -> APIRouter:
    """The webhook routes.  ``fetch_cert`` (URL → PEM) and ``confirm`` are injectable."""
    certs = CertCache(fetch_cert)
    r = APIRouter(prefix="/webhooks", tags=["webhooks"])

    @r.post("/ses", include_in_schema=False)
    async def ses(request: Request) -> JSONResponse:
        cfg = settings()
        try:
            msg = json.loads(await request.body())
            if not isinstance(msg, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise HTTPException(400, "body is not an SNS JSON message") from exc
        try:
            verify_sns(msg, certs)
        except SnsError as exc:
            log.warning("SNS message refused: %s", exc)
            raise HTTPException(403, f"SNS verification failed: {exc}") from exc
        topics = {t.strip() for t in cfg.sns_topic_arns.split(",") if t.strip()}
        if topics and msg.get("TopicArn") not in topics:
            raise HTTPException(403, "topic not accepted")
        kind = msg["Type"]
        if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
            with session_scope() as s:
                audit(s, "sns", kind.lower()[:64], str(msg.get("TopicArn", ""))[:200],
                      subscribe_url=msg.get("SubscribeURL"), message_id=msg.get("MessageId"))  # fmt: skip
            log.warning("SNS %s for %s: open %s to confirm", kind, msg.get("TopicArn"),
                        msg.get("SubscribeURL"))  # fmt: skip
            if kind == "SubscriptionConfirmation" and cfg.sns_auto_confirm:
                url = str(msg.get("SubscribeURL", ""))
                host = (urlsplit(url).hostname or "").lower()
                if urlsplit(url).scheme == "https" and _CERT_HOST.match(host):
                    (confirm or _https_get)(url)
            return JSONResponse({"recorded": kind})
        try:
            note = json.loads(msg.get("Message") or "{}")
        except ValueError as exc:
            raise HTTPException(400, "SNS Message is not SES JSON") from exc
        results = _ses_results(note) if isinstance(note, dict) else []
        return JSONResponse({"results": [_summary(x) for x in results]})

    @r.post("/postmark", include_in_schema=False)
    async def postmark(request: Request) -> JSONResponse:
        cfg = settings()
        creds: HTTPBasicCredentials | None = await _basic(request)
        password = cfg.password.get_secret_value()
        if not cfg.user or not password:
            raise HTTPException(404, "webhook not configured (NEWSLETTER_WEBHOOK_USER/_PASSWORD)")
        if creds is None or not (
            secrets.compare_digest(creds.username.encode(), cfg.user.encode())
            & secrets.compare_digest(creds.password.encode(), password.encode())
        ):
            raise HTTPException(401, "bad credentials", headers={"WWW-Authenticate": "Basic"})
        try:
            payload = json.loads(await request.body())
        except ValueError as exc:
            raise HTTPException(400, "body is not JSON") from exc
        items = payload if isinstance(payload, list) else [payload]
        results = [_postmark_result(p) for p in items if isinstance(p, dict)]
        return JSONResponse({"results": [_summary(x) for x in results]})

    return r


def _summary(r: BounceResult) -> dict[str, Any]:
    return {"kind": r.kind, "delivery": r.delivery_id, "applied": r.applied, "note": r.note}


#: Mount with ``app.include_router(router)``; certificates fetched over HTTPS.
router = make_router()
