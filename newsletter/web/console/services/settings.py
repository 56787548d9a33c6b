"""Console services for the publication's settings: sender, schedule, WeChat check."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from sqlalchemy import func, select

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NewsletterError, NotFound
from newsletter.models import Publication
from newsletter.web.console.auth import Principal, record
from newsletter.web.console.services.common import ConsoleError

__all__ = [
    "publication",
    "create_publication",
    "move_issue",
    "publications",
    "sender_identity",
    "update_publication",
    "update_schedule",
    "wechat_check",
]


def _pick(s: Any, slug: str | None) -> Publication | None:
    """The publication ``slug`` names, or the first (the only one, in most installs)."""
    if slug:
        return s.scalar(select(Publication).where(Publication.slug == slug))
    return s.scalars(select(Publication).order_by(Publication.id)).first()


def publications() -> list[dict[str, Any]]:
    """Every publication, with how many issues it has (the settings page's list)."""
    from newsletter.models import Issue

    with session_scope() as s:
        counts = dict(
            s.execute(
                select(Issue.publication_id, func.count())
                .where(Issue.kind == "weekly")
                .group_by(Issue.publication_id)
            ).all()
        )
        return [
            {"slug": p.slug, "name": p.name, "issues": int(counts.get(p.id, 0))}
            for p in s.scalars(select(Publication).order_by(Publication.id))
        ]


def create_publication(actor: Principal, slug: str, name: str) -> str:
    """A new publication (admin), with the configured sender identity; returns its slug."""
    from newsletter.issues.publications import create_publication as create

    with session_scope() as s:
        return create(s, slug, name, actor.username).slug  # audited there


def move_issue(actor: Principal, issue_id: int, slug: str) -> dict[str, Any]:
    """Move an issue to the publication ``slug`` (audited there); returns number and slug."""
    from newsletter.issues.publications import move_issue as move
    from newsletter.issues.publications import publication_by_slug
    from newsletter.models import Issue

    with session_scope() as s:
        issue = s.get(Issue, issue_id)
        if issue is None or issue.kind != "weekly":
            raise NotFound(f"期刊 {issue_id} 不存在 / issue does not exist")
        try:
            target = publication_by_slug(s, slug)
        except NotFound:  # a choice that is not there: a refusal, not a missing page
            from newsletter.core.catalogue import coded

            raise coded(ConsoleError, "publication.unknown", slug=slug) from None
        move(s, issue, target, actor.username)
        return {"number": issue.number, "slug": slug, "status": issue.status}


def publication(slug: str | None = None) -> dict[str, Any] | None:
    with session_scope() as s:
        pub = _pick(s, slug)
        if pub is None:
            return None
        return {
            c: getattr(pub, c)
            for c in (
                "id",
                "slug",
                "name",
                "from_name",
                "from_address",
                "reply_to",
                "list_id_domain",
                "postal_address",
                "timezone",
                "schedule_weekday",
                "schedule_time",
                "track_opens",
                "track_clicks",
                "default_list_id",
                "zh_hant_table",
            )
        }


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def update_publication(
    actor: Principal, values: dict[str, Any], request: Request | None = None, slug: str = ""
) -> dict[str, Any]:
    with session_scope() as s:
        pub = _pick(s, slug or None)
        if pub is None:
            raise NotFound("no publication yet; upload an issue first / 尚无刊物，请先上传一期")
        changed: dict[str, Any] = {}
        for key in ("name", "from_name", "from_address", "reply_to", "postal_address"):
            if key in values and values[key] is not None:
                v = str(values[key]).strip()
                if key in ("from_address", "reply_to") and v and not _EMAIL.match(v):
                    raise ConsoleError(f"{key}: not an email address / 邮箱格式不正确")
                if key == "reply_to" and not v:
                    pub.reply_to = None
                else:
                    setattr(pub, key, v)
                changed[key] = v
        for key in ("track_opens", "track_clicks"):
            if key in values and values[key] is not None:
                setattr(pub, key, bool(values[key]))
                changed[key] = bool(values[key])
        table = values.get("zh_hant_table")
        if table:
            if table not in ("s2t", "s2hk", "s2tw"):
                raise ConsoleError("zh_hant_table: expected s2t, s2hk or s2tw / 繁体转换表无效")
            pub.zh_hant_table = table
            changed["zh_hant_table"] = table
        record(s, actor, "settings.publication", pub.slug, request, **changed)
        slug = pub.slug
    out = publication(slug)
    assert out is not None
    return out


def update_schedule(
    actor: Principal,
    weekday: int,
    time_: str,
    tz: str,
    default_list: str | None,
    request: Request | None = None,
    slug: str | None = None,
) -> dict[str, Any]:
    from newsletter.schedule.slots import set_schedule

    with session_scope() as s:
        if slug:
            pub = s.scalar(select(Publication).where(Publication.slug == slug))
        else:
            pub = s.scalars(select(Publication).order_by(Publication.id)).first()
        if pub is None:
            raise NotFound("尚无刊物，请先导入一期 / no publication yet; import an issue first")
        set_schedule(
            s,
            pub,
            weekday=weekday,
            time=time_,
            tz=tz,
            default_list=default_list or None,
            actor=actor.username,
        )
    out = publication()
    assert out is not None
    return out


def sender_identity() -> dict[str, Any]:
    from newsletter.delivery.dkim import DkimSettings
    from newsletter.delivery.dkim_keys import dns_zone_line

    cfg = get_settings()
    dk = DkimSettings()
    record_line = None
    problem = None
    if dk.key_file is not None:
        try:
            record_line = dns_zone_line(dk.selector, dk.domain, dk.key_file.read_bytes())
        except (OSError, ValueError) as exc:
            problem = str(exc)
    return {
        "smtp_host": cfg.smtp_host,
        "smtp_port": cfg.smtp_port,
        "from_address": cfg.from_address,
        "bounce_domain": cfg.bounce_domain,
        "dkim_domain": dk.domain,
        "dkim_selector": dk.selector,
        "dkim_record": record_line,
        "dkim_problem": problem,
        "mode": "embedded" if cfg.embedded else "broker",
        "track_opens": cfg.track_opens,
        "track_clicks": cfg.track_clicks,
    }


def wechat_check(actor: Principal, request: Request | None = None) -> dict[str, Any]:
    from newsletter.core.wechat_settings import get_wechat_settings

    wx = get_wechat_settings()
    if not wx.configured:
        return {
            "ok": False,
            "configured": False,
            "message": "WeChat is not configured (NEWSLETTER_WECHAT_APPID/SECRET) / 未配置公众号",
        }
    from newsletter.wechat.client import WeChatClient

    out: dict[str, Any] = {"configured": True, "appid": wx.appid}
    try:
        with WeChatClient() as client:
            client.token()
            out["ok"] = True
            try:
                out["mass_send_quota"] = client.quota("/cgi-bin/message/mass/sendall")
            except NewsletterError as exc:
                out["mass_send_quota"] = {"error": str(exc)}
    except NewsletterError as exc:
        out.update(ok=False, message=str(exc))
    with session_scope() as s:
        record(s, actor, "settings.wechat_check", wx.appid, request, ok=out.get("ok"))
    return out


#: Time zones offered by the slot picker (any IANA name is accepted).
ZONES = ("Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Singapore", "Asia/Tokyo", "UTC")
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def schedule_overview(weeks: int = 4) -> list[dict[str, Any]]:
    """Per publication: its weekly slot, the next slots in its zone, the default list and its
    reach, and the sends already scheduled in the coming weeks."""
    import datetime as dt

    from newsletter.core import clock
    from newsletter.models import Issue, MailingList, Send, Subscriber, Subscription, Suppression
    from newsletter.schedule.slots import next_slot, parse_time, zone

    now = clock.now()
    horizon = now + dt.timedelta(weeks=weeks)
    out: list[dict[str, Any]] = []
    with session_scope() as s:
        for pub in s.scalars(select(Publication).order_by(Publication.id)):
            slots: list[str] = []
            if pub.schedule_weekday and pub.schedule_time:
                at, after = parse_time(pub.schedule_time), now
                for _ in range(weeks):
                    after = next_slot(pub.schedule_weekday, at, pub.timezone, after)
                    slots.append(after.astimezone(zone(pub.timezone)).isoformat())
            reach = None
            ml = s.get(MailingList, pub.default_list_id) if pub.default_list_id else None
            if ml is not None:
                reach = int(
                    s.scalar(
                        select(func.count())
                        .select_from(Subscription)
                        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                        .where(
                            Subscription.list_id == ml.id,
                            Subscription.status == "active",
                            Subscriber.status == "active",
                            Subscriber.email.not_in(select(Suppression.email)),
                        )
                    )
                    or 0
                )
            upcoming = [
                {
                    "send_id": send.id,
                    "number": number,
                    "title": title,
                    "at": send.scheduled_at.isoformat() if send.scheduled_at else "",
                    "channel": send.channel,
                }
                for send, number, title in s.execute(
                    select(Send, Issue.number, Issue.title)
                    .join(Issue, Issue.id == Send.issue_id)
                    .where(
                        Send.publication_id == pub.id,
                        Send.state == "scheduled",
                        Send.scheduled_at <= horizon,
                    )
                    .order_by(Send.scheduled_at)
                ).all()
            ]
            out.append(
                {
                    "slug": pub.slug,
                    "name": pub.name,
                    "weekday": pub.schedule_weekday,
                    "time": pub.schedule_time,
                    "timezone": pub.timezone,
                    "slots": slots,
                    "default_list": ml.name if ml is not None else None,
                    "reach": reach,
                    "upcoming": upcoming,
                    "calendar": _calendar(now, weeks, pub.timezone, slots, upcoming),
                }
            )
    return out


def _calendar(
    now: Any, weeks: int, tz: str, slots: list[str], upcoming: list[dict[str, Any]]
) -> list[list[dict[str, Any]]]:
    """The coming weeks as rows of seven days (Monday first) in the publication's zone:
    each day with its date, whether a weekly slot falls on it, and the sends placed on it."""
    import datetime as dt

    from newsletter.schedule.slots import zone

    here = zone(tz)
    today = now.astimezone(here).date()
    monday = today - dt.timedelta(days=today.weekday())
    on_day: dict[dt.date, list[dict[str, Any]]] = {}
    for u in upcoming:
        if u["at"]:
            day = dt.datetime.fromisoformat(u["at"]).astimezone(here).date()
            on_day.setdefault(day, []).append(u)
    slot_days = {dt.datetime.fromisoformat(t).astimezone(here).date() for t in slots}
    return [
        [
            {
                "date": d.isoformat(),
                "label": f"{d.month:02d}-{d.day:02d}",
                "today": d == today,
                "past": d < today,
                "slot": d in slot_days,
                "sends": on_day.get(d, []),
            }
            for d in (monday + dt.timedelta(days=w * 7 + i) for i in range(7))
        ]
        for w in range(weeks)
    ]
