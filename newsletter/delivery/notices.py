"""Review notices by mail: each notice (``models.ReviewNotice``) is mailed at most once.

A notice is claimed by setting ``emailed_at`` where it is still empty, so two runners
(the embedded loop and a worker, or two workers) never both mail it. A person without an
address (``console_user.email``, else a username that is one) keeps the console notice
only. The mail is short, Chinese first, and links to the issue in the console.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

from sqlalchemy import select, update

from newsletter.core import clock
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.safety.headers import clean_text
from newsletter.delivery.system_mail import send_message
from newsletter.models import Issue, ReviewNotice, User, utcnow

__all__ = ["address_of", "mail_due", "notice_message"]

log = logging.getLogger(__name__)

#: (subject, first line) per kind, Chinese then English; {n} number, {t} title, {who} actor.
_SAID = {
    "ready": ("第{n}期等待你审核：{t}", "{who} 提交了第{n}期《{t}》，等待审核。", "Issue {n} waits for your review"),
    "approved": ("第{n}期已审核通过：{t}", "{who} 审核通过了第{n}期《{t}》。", "Issue {n} was approved"),
    "sent_back": ("第{n}期被退回修改：{t}", "{who} 退回了第{n}期《{t}》，请修改。", "Issue {n} was sent back for changes"),
}  # fmt: skip


def address_of(user: User) -> str | None:
    """Where a person's notices go, or None."""
    for value in (user.email, user.username):
        v = (value or "").strip()
        local, at, domain = v.rpartition("@")
        if at and local and "." in domain and not any(c in v for c in " \r\n<>,;\"'"):
            return v
    return None


def notice_message(notice: ReviewNotice, issue: Issue, to: str, who: str) -> EmailMessage:
    cfg = get_settings()
    subject, first, english = _SAID[notice.kind]
    fill = {"n": issue.number, "t": clean_text(issue.title, 120), "who": who}
    url = f"{cfg.base_url.rstrip('/')}/console/issues/{issue.id}"
    lines = [first.format(**fill)]
    if notice.note:
        lines += ["", "修改意见 / Note:", notice.note]
    lines += ["", url, "", english.format(**fill) + ": " + url]
    msg = EmailMessage()
    msg["From"] = formataddr((cfg.from_name, cfg.from_address))
    msg["To"] = to
    msg["Subject"] = clean_text(subject.format(**fill), 200)
    msg["Date"] = formatdate(clock.timestamp(), usegmt=True)
    msg["Message-ID"] = make_msgid(domain=cfg.from_address.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content("\n".join(lines) + "\n", cte="8bit")
    return msg


def mail_due(limit: int = 50) -> int:
    """Mail the notices not mailed yet; returns how many went out."""
    with session_scope() as s:
        due = list(
            s.scalars(
                select(ReviewNotice.id)
                .where(ReviewNotice.emailed_at.is_(None))
                .order_by(ReviewNotice.id)
                .limit(limit)
            )
        )
    sent = 0
    for nid in due:
        with session_scope() as s:
            res: Any = s.execute(
                update(ReviewNotice)
                .where(ReviewNotice.id == nid, ReviewNotice.emailed_at.is_(None))
                .values(emailed_at=utcnow(), mail_state="sending")
            )
        if res.rowcount != 1:
            continue  # another runner has it
        sent += _mail_one(nid)
    return sent


def _mail_one(nid: int) -> int:
    with session_scope() as s:
        notice = s.get(ReviewNotice, nid)
        assert notice is not None
        issue = s.get(Issue, notice.issue_id)
        person = s.scalar(select(User).where(User.username == notice.recipient))
        actor = s.scalar(select(User).where(User.username == notice.actor))
        to = address_of(person) if person is not None and person.active else None
        if issue is None or to is None:
            notice.mail_state = "no_address"
            return 0
        who = (actor.display_name or actor.username) if actor is not None else notice.actor
        msg = notice_message(notice, issue, to, who)
    cfg = get_settings()
    try:
        outcome = send_message(f"bounces@{cfg.bounce_domain}", to, msg)
        state = "sent" if outcome.state == "sent" else "failed"
        if state == "failed":
            log.warning("review notice %s refused: %s %s", nid, outcome.code, outcome.reply)
    except Exception as exc:  # one failed notice must not stop the others
        log.warning("review notice %s not mailed: %s", nid, exc)
        state = "failed"
    with session_scope() as s:
        row = s.get(ReviewNotice, nid)
        if row is not None:
            row.mail_state = state
    return 1 if state == "sent" else 0
