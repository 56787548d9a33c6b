"""Double opt-in: a public request, a signed confirmation link, and list-bombing defences.

A request never reveals whether an address is already subscribed: the
answer is the same "check your mailbox" in every case.  Confirmation mail is
limited per address (default once a day), per client IP (5 an hour) and
globally (300 an hour); a honeypot field and a signed form timestamp (a form
submitted within 2 seconds of being served is a bot) stop naive scripts.  The
confirmation link only shows a button: the subscription is confirmed by POST,
so a mail scanner that fetches the link confirms nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from sqlalchemy import select

from newsletter.audience.addresses import address_hash, normalise
from newsletter.core import clock
from newsletter.core.audit import audit
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound, TokenError
from newsletter.core.ratelimit import hit
from newsletter.core.safety.headers import clean_text
from newsletter.core.safety.signing import confirm_token, sign, verify, verify_confirm
from newsletter.models import MailingList, Subscriber, Subscription, Suppression, utcnow

__all__ = [
    "OptinResult",
    "confirm",
    "confirmation_message",
    "form_stamp",
    "request_subscription",
]

_MIN_FORM_SECONDS = 2


@dataclass(slots=True)
class OptinResult:
    outcome: str  # sent | already | suppressed | throttled | bot
    detail: str = ""
    #: The confirmation to send when ``outcome`` is "sent": (address, list name, token,
    #: variant), for ``delivery.system_mail.send_confirmation(*mail)``.
    mail: tuple[str, str, str, str] | None = None


def form_stamp() -> str:
    """A signed timestamp embedded in the form; checked on submit."""
    return sign("c", 0, 0, int(clock.timestamp()))


def _stamp_ok(stamp: str) -> bool:
    try:
        t = verify(stamp, "c")
    except TokenError:
        return False
    age = clock.timestamp() - t.fields[2]
    return _MIN_FORM_SECONDS <= age <= 86400


#: What ``?src=`` may say (a short tag such as ``wechat``); anything else is dropped.
_SRC_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def signup_source(list_name: str, src: str = "") -> str:
    """``Subscriber.source`` of a form sign-up: ``form:LIST`` or ``form:LIST;src=TAG``.

    Marketing counts WeChat-originated sign-ups with ``source LIKE '%;src=wechat'``.
    """
    base = f"form:{list_name}"
    tag = clean_src(src)
    return f"{base[:160]};src={tag}" if tag else base


def clean_src(value: object) -> str:
    """A ``?src=`` tag if it is one (lower-case ASCII letters, digits, ``-``, ``_``), else ''."""
    tag = str(value or "").strip().lower()
    return tag if _SRC_RE.fullmatch(tag) else ""


def request_subscription(
    email: str,
    list_id: int,
    *,
    name: str = "",
    variant: str = "zh-Hans",
    ip: str = "",
    stamp: str | None = None,
    honeypot: str = "",
    src: str = "",
) -> OptinResult:
    """Record an unconfirmed subscription; say which confirmation to mail (within limits).

    Raises AddressError for an invalid address.  Every other outcome looks the
    same to the requester.
    """
    addr = normalise(email)
    cfg = get_settings()
    if honeypot or (stamp is not None and not _stamp_ok(stamp)):
        return OptinResult("bot")
    with session_scope() as s:
        ml = s.get(MailingList, list_id)
        if ml is None:
            raise NotFound(f"list {list_id} does not exist")
        if ip and not hit(
            s, f"optin-ip:{ip}", window_seconds=3600, limit=cfg.subscribe_per_ip_per_hour
        ):
            return OptinResult("throttled", "ip")
        suppressed = s.scalar(
            select(Suppression.id).where(Suppression.email.in_([addr, address_hash(addr)]))
        )
        if suppressed:
            return OptinResult("suppressed")
        sub = s.scalar(select(Subscriber).where(Subscriber.email == addr))
        if sub is None:
            sub = Subscriber(
                email=addr,
                name=clean_text(name, 200),
                variant=variant if variant in ("zh-Hans", "zh-Hant") else "zh-Hans",
                source=signup_source(ml.name, src),
            )
            s.add(sub)
            s.flush()
        elif sub.status != "active":
            return OptinResult("suppressed")
        subn = s.get(Subscription, (sub.id, list_id))
        if subn is not None and subn.status == "active":
            return OptinResult("already")
        if subn is None:
            s.add(Subscription(subscriber_id=sub.id, list_id=list_id, status="unconfirmed"))
        elif subn.status == "unsubscribed":
            subn.status = "unconfirmed"  # only a confirmed click makes it active again
        addr_key = hashlib.sha256(addr.encode()).hexdigest()[:32]
        if not hit(
            s,
            f"optin-addr:{addr_key}",
            window_seconds=86400,
            limit=cfg.subscribe_per_address_per_day,
        ):
            return OptinResult("throttled", "address")
        if not hit(s, "optin-global", window_seconds=3600, limit=cfg.subscribe_global_per_hour):
            return OptinResult("throttled", "global")
        token = confirm_token(sub.id, list_id, cfg.confirm_ttl_hours * 3600)
        list_name, variant_used = ml.name, sub.variant
    # The caller sends it (``delivery.system_mail``): the web form answers first and mails
    # afterwards, so the time to answer does not tell a new address from a known one.
    return OptinResult("sent", mail=(addr, list_name, token, variant_used))


def confirmation_message(addr: str, list_name: str, token: str, variant: str) -> EmailMessage:
    """The confirmation mail for a request (in the reader's script), unsigned."""
    cfg = get_settings()
    url = f"{cfg.base_url.rstrip('/')}/confirm/{token}"
    hant = variant == "zh-Hant"
    subject = f"請確認訂閱《{list_name}》" if hant else f"请确认订阅《{list_name}》"
    body = (
        f"您好！\n\n我們收到了以此郵箱訂閱《{list_name}》的請求。請開啟下面的連結確認：\n\n{url}\n\n"
        f"連結 {cfg.confirm_ttl_hours} 小時內有效。如果不是您本人操作，請忽略本郵件，"
        "您不會收到任何後續郵件。\n"
        if hant
        else f"您好！\n\n我们收到了以此邮箱订阅《{list_name}》的请求。请打开下面的链接确认：\n\n{url}\n\n"
        f"链接 {cfg.confirm_ttl_hours} 小时内有效。如果不是您本人操作，请忽略本邮件，"
        "您不会收到任何后续邮件。\n"
    )
    msg = EmailMessage()
    msg["From"] = formataddr((cfg.from_name, cfg.from_address))
    msg["To"] = addr
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=cfg.from_address.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(body, cte="8bit")
    return msg


def confirm(token: str) -> tuple[int, int]:
    """Activate the subscription a confirmation token names. Idempotent."""
    sid, list_id = verify_confirm(token)
    with session_scope() as s:
        subn = s.get(Subscription, (sid, list_id))
        sub = s.get(Subscriber, sid)
        if subn is None or sub is None or sub.status != "active":
            raise TokenError("this confirmation link no longer applies")
        if subn.status != "active":
            subn.status = "active"
            subn.unsubscribed_at = None
            subn.confirmed_at = utcnow()  # the welcome series counts from here
            sub.confirmed_at = sub.confirmed_at or utcnow()
            audit(s, sub.email, "subscription.confirm", f"list:{list_id}")
    return sid, list_id
