"""Bounces and complaints that arrive by mail: DSNs (RFC 3464) and ARF (RFC 5965).

Every message is sent with the envelope sender ``bounces+<delivery token>@<bounce
domain>`` (VERP).  A bounce therefore names its delivery; the token is HMAC-signed
(:mod:`newsletter.core.safety.signing`), so a forged bounce cannot suppress an arbitrary
address.  The token is looked for, in order, in the envelope recipient (when the
SMTP endpoint passes it), the To / Delivered-To / X-Original-To / Envelope-To /
X-Envelope-To headers, then anywhere in the report (an ARF report's
``Original-Mail-From``, the returned message's ``Return-Path``, or a tracking URL
in the returned body).

Classification:

* ``multipart/report; report-type=feedback-report`` with ``Feedback-Type: abuse``
  → **complaint**: suppression ``complaint`` and an Event ``complaint``;
* ``multipart/report; report-type=delivery-status``: a recipient with
  ``Action: failed`` or a ``5.x.x`` status → **hard**: the delivery becomes
  ``bounced`` and the address is suppressed (``hard_bounce``); ``Action:
  delayed`` or ``4.x.x`` → **soft**: recorded in ``last_reply`` only (the engine's
  retries and the suppression after repeated failures handle the rest);
* anything else goes to flufl.bounce, which knows many non-standard MTA formats
  (qmail, Exim, old Microsoft and Yahoo formats...): permanent failures → hard,
  temporary → soft.

Entry points: :func:`parse_report` (no database), :func:`process_dsn` (parse and
apply), :func:`process_maildir` (a mailbox the product reads) and
:class:`BounceSMTPHandler` (an SMTP endpoint, with aiosmtpd, that also takes
``mailto:`` unsubscribes at ``unsubscribe+<token>@``).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select, update

from newsletter.audience.service import suppress, unsubscribe
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound, TokenError
from newsletter.core.safety.signing import verify
from newsletter.models import Delivery, Subscriber

__all__ = [
    "BounceResult",
    "BounceSMTPHandler",
    "apply_result",
    "parse_report",
    "process_dsn",
    "process_maildir",
]

log = logging.getLogger(__name__)

Kind = Literal["hard", "soft", "complaint", "delivered", "unknown"]

_TOKEN = r"d[0-9a-z]{1,13}\.[A-Za-z0-9_-]{16}"
_VERP_RE = re.compile(rf"bounces\+({_TOKEN})@", re.IGNORECASE)
_URL_TOKEN_RE = re.compile(rf"/(?:o|c)/({_TOKEN})(?:[./]|\b)")
_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDR_HEADERS = ("to", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to")


@dataclass(slots=True)
class BounceResult:
    """What a report said, and what was done about it."""

    kind: Kind
    delivery_id: int | None = None
    #: the address the report is about (Final-Recipient / the delivery's address)
    recipient: str | None = None
    status: str | None = None  # enhanced status code, e.g. "5.1.1"
    diagnostic: str = ""
    source: str = ""  # "dsn", "arf", "flufl", "none"
    applied: bool = False
    note: str = ""
    failed: list[str] = field(default_factory=list)  # every failed address in the report


# -- parsing ---------------------------------------------------------------------


def _token_from(text: str) -> int | None:
    for pattern in (_VERP_RE, _URL_TOKEN_RE):
        for m in pattern.finditer(text):
            try:
                return verify(m.group(1).lower()[:1] + m.group(1)[1:], "d").fields[0]
            except TokenError:
                continue
    return None


def find_delivery(msg: Message, raw: bytes, envelope_rcpts: list[str] | None = None) -> int | None:
    """The delivery id named by a signed VERP token in the report, or None."""
    for rcpt in envelope_rcpts or []:
        if (d := _token_from(rcpt)) is not None:
            return d
    for name in _ADDR_HEADERS:
        for v in msg.get_all(name, []):
            if (d := _token_from(str(v))) is not None:
                return d
    # The report's own parts: ARF Original-Mail-From, the returned message's
    # Return-Path / headers, or a tracking URL in its body.
    return _token_from(raw.decode("utf-8", "replace"))


def _addr(value: str | None) -> str | None:
    """'rfc822; user@example.com' → 'user@example.com'."""
    if not value:
        return None
    v = str(value).strip()
    if ";" in v:
        v = v.split(";", 1)[1]
    v = v.strip().strip("<>").strip()
    return v or None


def _status_kind(action: str, status: str) -> Kind:
    action = action.lower().strip()
    if action in ("delivered", "relayed", "expanded"):
        return "delivered"
    if status.startswith("5"):
        return "hard"
    if status.startswith("4") or action == "delayed":
        return "soft"
    if action == "failed":
        return "hard"
    return "unknown"


def _report_part(msg: Message, report_type: str) -> Message | None:
    if msg.get_content_type() != "multipart/report":
        return None
    if str(msg.get_param("report-type") or "").lower() != report_type:
        return None
    return msg


def _parse_dsn(msg: Message) -> BounceResult | None:
    status_part = next(
        (p for p in msg.walk() if p.get_content_type() == "message/delivery-status"), None
    )
    if status_part is None:
        return None
    blocks: Any = status_part.get_payload()
    if not isinstance(blocks, list):  # some MTAs label a text blob as delivery-status
        text = str(blocks)
        blocks = [email.message_from_string(b) for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    recips = [b for b in blocks[1:] if b.get("Action") or b.get("Status")]
    if not recips:
        return None
    order = {"hard": 0, "soft": 1, "unknown": 2, "delivered": 3}
    best: BounceResult | None = None
    failed: list[str] = []
    for b in recips:
        status_m = _STATUS_RE.search(str(b.get("Status", "")))
        status = ".".join(status_m.groups()) if status_m else ""
        kind = _status_kind(str(b.get("Action", "")), status)
        rcpt = _addr(b.get("Final-Recipient")) or _addr(b.get("Original-Recipient"))
        if kind == "hard" and rcpt:
            failed.append(rcpt)
        diag = " ".join(str(b.get("Diagnostic-Code", "")).split())
        r = BounceResult(kind, recipient=rcpt, status=status or None, diagnostic=diag, source="dsn")
        if best is None or order[kind] < order[best.kind]:
            best = r
    assert best is not None
    best.failed = failed
    return best


def _parse_arf(msg: Message) -> BounceResult | None:
    fb = next((p for p in msg.walk() if p.get_content_type() == "message/feedback-report"), None)
    if fb is None:
        return None
    payload: Any = fb.get_payload()
    fields: Any = payload[0] if isinstance(payload, list) and payload else None
    if fields is None:
        fields = email.message_from_string(str(payload))
    ftype = str(fields.get("Feedback-Type", "")).strip().lower()
    rcpt = _addr(fields.get("Original-Rcpt-To")) or _addr(fields.get("Removal-Recipient"))
    kind: Kind = "complaint" if ftype in ("abuse", "fraud") else "unknown"
    return BounceResult(
        kind,
        recipient=rcpt,
        diagnostic=f"Feedback-Type: {ftype}; User-Agent: {fields.get('User-Agent', '')}",
        source="arf",
    )


def _parse_flufl(msg: Message) -> BounceResult:
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except Exception as exc:  # a detector choked on a strange message
        log.warning("flufl.bounce failed: %s", exc)
        return BounceResult("unknown", source="flufl", note=f"flufl.bounce error: {exc}")
    perm = sorted(a.decode("ascii", "replace") for a in permanent)
    temp = sorted(a.decode("ascii", "replace") for a in temporary)
    body = _text_of(msg)
    m = _STATUS_RE.search(body)
    status = ".".join(m.groups()) if m else None
    if perm:
        return BounceResult(
            "hard",
            recipient=perm[0],
            status=status,
            source="flufl",
            failed=perm,
            diagnostic=_first_line_with(body, perm[0]),
        )
    if temp:
        return BounceResult(
            "soft",
            recipient=temp[0],
            status=status,
            source="flufl",
            diagnostic=_first_line_with(body, temp[0]),
        )
    return BounceResult("unknown", source="none", note="not a recognised bounce or report")


def _text_of(msg: Message) -> str:
    out: list[str] = []
    for p in msg.walk():
        if p.get_content_maintype() == "text":
            data = p.get_payload(decode=True)
            if isinstance(data, bytes):
                out.append(data.decode(p.get_content_charset() or "utf-8", "replace"))
    return "\n".join(out)


def _first_line_with(text: str, needle: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if needle in line:
            return " ".join(" ".join(lines[i : i + 3]).split())[:500]
    return ""


def parse_report(raw: bytes, envelope_rcpts: list[str] | None = None) -> BounceResult:
    """Classify a bounce or complaint and find its delivery; touches no database rows."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    result: BounceResult | None = None
    if _report_part(msg, "feedback-report") is not None:
        result = _parse_arf(msg)
    if result is None and _report_part(msg, "delivery-status") is not None:
        result = _parse_dsn(msg)
    if result is None:  # also catches ARF/DSN parts inside a wrapper message
        result = (
            _parse_arf(msg)
            if any(p.get_content_type() == "message/feedback-report" for p in msg.walk())
            else _parse_dsn(msg)
        )
    if result is None:
        result = _parse_flufl(msg)
    result.delivery_id = find_delivery(msg, raw, envelope_rcpts)
    return result


# -- applying --------------------------------------------------------------------


def apply_result(result: BounceResult, *, event_uid: str | None = None) -> BounceResult:
    """Apply a parsed result to the ledger (one transaction)."""
    if result.kind not in ("hard", "soft", "complaint"):
        result.note = result.note or f"{result.kind}: nothing to do"
        return result
    if result.delivery_id is None:
        result.note = "no valid delivery token (VERP) in the report: not applied"
        return result
    with session_scope() as s:
        row = s.execute(
            select(Delivery, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id == result.delivery_id)
        ).first()
        if row is None:
            result.note = f"delivery {result.delivery_id} does not exist"
            return result
        delivery, address = row
        if result.recipient and result.recipient.lower() != address.lower():
            result.note = f"report names {result.recipient}; applied to the delivery's {address}"
        result.recipient = address
        reply = f"{result.source.upper()} {result.status or ''} {result.diagnostic}".strip()[:1000]
        if result.kind == "hard":
            s.execute(
                update(Delivery)
                .where(Delivery.id == delivery.id)
                .values(state="bounced", last_reply=reply, claimed_by=None, lease_until=None)
            )
            suppress(s, address, "hard_bounce", note=reply, delivery_id=delivery.id)
            # tracking: a bounce event for the rollups
            from newsletter.tracking.rollups import record

            record(s, "bounce", delivery.id, rule=f"{result.source} {result.status or ''}")
        elif result.kind == "soft":
            s.execute(update(Delivery).where(Delivery.id == delivery.id).values(last_reply=reply))
        else:
            suppress(s, address, "complaint", note=reply, delivery_id=delivery.id)
            # tracking: event + rollups in this transaction
            from newsletter.tracking.rollups import record

            record(s, "complaint", delivery.id, uid=event_uid, rule=result.source)
        result.applied = True
    return result


def process_dsn(raw: bytes, envelope_rcpts: list[str] | None = None) -> BounceResult:
    """Parse a DSN / ARF report / non-standard bounce and apply it."""
    return apply_result(parse_report(raw, envelope_rcpts))


def process_system_bounce(raw: bytes, token: str) -> BounceResult:
    """A report about system mail (confirmation, test send, alert).

    A hard bounce or a complaint about mail sent to a subscriber suppresses that
    subscriber's address (a confirmation to a dead address must not be retried);
    reports about mail to non-subscribers are recorded only.
    """
    result = parse_report(raw)
    subscriber_id = verify(token, "s").fields[0]
    if result.kind not in ("hard", "complaint") or not subscriber_id:
        result.note = result.note or f"system mail, {result.kind}: recorded only"
        return result
    with session_scope() as s:
        address = s.scalar(select(Subscriber.email).where(Subscriber.id == subscriber_id))
        if address is None:
            result.note = f"subscriber {subscriber_id} does not exist"
            return result
        reason = "hard_bounce" if result.kind == "hard" else "complaint"
        reply = f"{result.source.upper()} {result.status or ''} {result.diagnostic}".strip()
        suppress(s, address, reason, note=f"system mail: {reply}"[:1000])
        result.recipient, result.applied = address, True
    return result


def process_maildir(path: str | Path) -> list[BounceResult]:
    """Process every unread message in a Maildir (``new/``), then move it to ``cur/`` (seen).

    A message whose processing raised stays in ``new/`` and is retried next time.
    """
    root = Path(path)
    new, cur = root / "new", root / "cur"
    cur.mkdir(parents=True, exist_ok=True)
    results: list[BounceResult] = []
    if not new.is_dir():
        return results
    for f in sorted(new.iterdir()):
        if not f.is_file() or f.name.startswith("."):
            continue
        try:
            results.append(process_dsn(f.read_bytes()))
        except Exception:
            log.exception("bounce %s could not be processed; left in new/", f.name)
            continue
        f.rename(cur / (f.name.split(":", 1)[0] + ":2,S"))
    return results


# -- the SMTP endpoint -------------------------------------------------------------


@dataclass
class BounceSMTPHandler:
    """aiosmtpd handler for ``bounces+<token>@`` and ``unsubscribe+<token>@`` mail.

    Other recipients are refused at RCPT (550), as are unsubscribe addresses
    whose token does not verify.  ``domain`` (default: the bounce domain from
    settings) restricts the accepted domain; ``archive`` keeps every accepted
    message as a file for audit.
    """

    domain: str | None = None
    archive: Path | None = None
    results: list[BounceResult] = field(default_factory=list)
    unsubscribed: list[int] = field(default_factory=list)

    def _split(self, address: str) -> tuple[str, str] | None:
        cfg = get_settings()
        if address.strip("<>").lower() in {a.lower() for a in cfg.feedback_addresses}:
            return "feedback", ""
        local, _, dom = address.strip("<>").rpartition("@")
        want = (self.domain or cfg.bounce_domain).lower()
        if not local or dom.lower() != want:
            return None
        prefix, plus, token = local.partition("+")
        if not plus or prefix.lower() not in ("bounces", "unsubscribe") or not token:
            return None
        return prefix.lower(), token

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        parts = self._split(address)
        if parts is None:
            return "550 5.1.1 no such mailbox here"
        kind, token = parts
        if kind != "feedback":
            try:
                if kind == "unsubscribe":
                    verify(token, "u")
                elif token.startswith("s"):  # system mail: confirmation, test send, alert
                    verify(token, "s")
                else:
                    verify(token, "d")
            except TokenError:
                return "550 5.1.1 invalid or altered token"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        if self.archive is not None:
            self.archive.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(raw).hexdigest()[:20] + ".eml"
            (self.archive / name).write_bytes(raw)
        try:
            for rcpt in envelope.rcpt_tos:
                parts = self._split(rcpt)
                if parts is None:  # pragma: no cover - refused at RCPT
                    continue
                kind, token = parts
                if kind == "unsubscribe":
                    self._unsubscribe(token)
                elif token.startswith("s"):
                    self.results.append(process_system_bounce(raw, token))
                else:  # a delivery's bounce, or a feedback-loop report (ARF names the token)
                    self.results.append(process_dsn(raw, [rcpt]))
        except Exception:
            log.exception("processing mail for %s failed", envelope.rcpt_tos)
            return "451 4.3.0 temporary processing failure, try again later"
        return "250 OK"

    def _unsubscribe(self, token: str) -> None:
        sid, lid = verify(token, "u").fields
        with session_scope() as s:
            try:
                unsubscribe(s, sid, lid or None, reason="mailto")
            except NotFound:
                log.info("mailto unsubscribe for missing subscriber %s", sid)
                return
        self.unsubscribed.append(sid)


def start_bounce_server(
    host: str = "127.0.0.1", port: int = 2525, **kw: Any
) -> tuple[Any, BounceSMTPHandler]:
    """Start the endpoint in a thread (aiosmtpd Controller); returns (controller, handler)."""
    from aiosmtpd.controller import Controller

    handler = BounceSMTPHandler(**kw)
    ctrl = Controller(handler, hostname=host, port=port, decode_data=False)
    ctrl.start()
    return ctrl, handler
