"""Builders for test data, written through the same code paths the product uses."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from newsletter.audience.service import get_or_create_list
from newsletter.core.db import session_scope
from newsletter.issues.seal import seal_issue
from newsletter.issues.store import RENDERER_VERSION
from newsletter.models import (
    Issue,
    Link,
    Publication,
    Rendition,
    Send,
    Subscriber,
    Subscription,
)

#: A real, lint-clean source, so that approving the seeded issue exercises the real gate.
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "examples"
SAMPLE_SOURCE = (SAMPLE_DIR / "issue-sample.md").read_text(encoding="utf-8")
HTML = (
    "<!doctype html><html><body>"
    '<img src="https://news.example.org/o/%%TOKEN%%.gif" width="1" height="1" alt="">\n'
    "<p>%%NAME%%，您好！本期政策周报。</p>\n"
    '<a href="https://news.example.org/c/%%TOKEN%%/1">国务院文件</a>\n'
    '<a href="https://news.example.org/u/%%UNSUB%%">退订</a>\n'
    "</body></html>\n"
)
TEXT = "%%NAME%%，您好！本期政策周报。\n国务院文件 https://news.example.org/c/%%TOKEN%%/1\n退订 https://news.example.org/u/%%UNSUB%%\n"


def seed(n: int, *, list_name: str = "周报订阅", domain: str = "example.com") -> dict[str, int]:
    """A publication, an issue with stored renditions, n subscribers on a list, a draft send."""
    with session_scope() as s:
        pub = Publication(
            slug="weekly",
            name="政策周报",
            from_name="政策周报",
            from_address="news@example.org",
            list_id_domain="weekly.example.org",
            postal_address="北京市海淀区示例路 1 号",
        )
        s.add(pub)
        s.flush()
        issue = Issue(
            publication_id=pub.id,
            number=47,
            title="营商环境政策周报 第47期",
            period="2026年11月",
            source_text=SAMPLE_SOURCE,
            source_hash="0" * 64,
            status="approved",
            base_dir=str(SAMPLE_DIR),
        )
        s.add(issue)
        s.flush()
        # Approved means sealed: the renditions below are those of the sealed version.
        key = seal_issue(s, issue, "factory", RENDERER_VERSION).digest
        for variant in ("zh-Hans", "zh-Hant"):
            for output, body in (("email_html", HTML), ("email_text", TEXT), ("web", HTML)):
                s.add(
                    Rendition(
                        issue_id=issue.id,
                        variant=variant,
                        output=output,
                        source_hash=key,
                        content_hash=hashlib.sha256(body.encode()).hexdigest(),
                        size_bytes=len(body.encode()),
                        size_chars=len(body),
                        renderer_version=RENDERER_VERSION,
                        mode="full",
                        subject="营商环境政策周报 第47期",
                        body=body,
                    )
                )
        s.add(
            Link(
                issue_id=issue.id,
                position=1,
                url="https://www.gov.cn/zhengce/1.htm",
                text="国务院文件",
            )
        )
        ml = get_or_create_list(s, list_name)
        for i in range(n):
            sub = Subscriber(
                email=f"reader{i}@{domain}",
                name=f"读者{i}",
                variant="zh-Hant" if i % 3 == 0 else "zh-Hans",
            )
            s.add(sub)
            s.flush()
            s.add(Subscription(subscriber_id=sub.id, list_id=ml.id, status="active"))
        send = Send(
            publication_id=pub.id, issue_id=issue.id, list_id=ml.id, channel="email", state="draft"
        )
        s.add(send)
        s.flush()
        return {"publication": pub.id, "issue": issue.id, "list": ml.id, "send": send.id}


def draft_send_to_one_reader(s: Any, issue: Issue, *, list_name: str = "周报订阅") -> Send:
    """In session ``s``: one active reader (reader@example.com, zh-Hans) on a list, and a
    draft email send of ``issue`` to that list (flushed, so it has its id)."""
    ml = get_or_create_list(s, list_name)
    sub = Subscriber(email="reader@example.com", name="读者", variant="zh-Hans")
    s.add(sub)
    s.flush()
    s.add(Subscription(subscriber_id=sub.id, list_id=ml.id, status="active"))
    send = Send(publication_id=issue.publication_id, issue_id=issue.id, list_id=ml.id,
                channel="email", state="draft")  # fmt: skip
    s.add(send)
    s.flush()
    return send
