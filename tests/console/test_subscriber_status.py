"""Subscriber search shows what a person would call each subscriber, and filters on it."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from newsletter.audience.service import get_or_create_list
from newsletter.core.db import session_scope
from newsletter.models import Subscriber, Subscription, Suppression
from tests.console.helpers import login


def _seed() -> int:
    with session_scope() as s:
        ml = get_or_create_list(s, "周报订阅")
        for email, sub_state, supp in (
            ("live@example.com", "active", None),
            ("left@example.com", "unsubscribed", None),
            ("wait@example.com", "unconfirmed", None),
            ("gone@example.com", "active", "hard_bounce"),
            ("angry@example.com", "active", "complaint"),
        ):
            sub = Subscriber(email=email, name="")
            s.add(sub)
            s.flush()
            s.add(Subscription(subscriber_id=sub.id, list_id=ml.id, status=sub_state))
            if supp:
                s.add(Suppression(email=email, reason=supp))
        return ml.id


def _rows(page: str) -> dict[str, str]:
    return dict(
        re.findall(r">([a-z]+@example\.com)</a></td><td>[^<]*</td><td>[^<]*</td><td>([^<·]+)", page)
    )


def test_an_unsubscribed_reader_is_not_shown_as_active(client: TestClient) -> None:
    list_id = _seed()
    login(client, "ops")
    page = client.get("/console/subscribers", params={"q": "a"}).text
    rows = _rows(client.get("/console/subscribers", params={"q": "", "list_id": str(list_id)}).text)
    assert rows["live@example.com"].strip() == "有效"
    assert rows["left@example.com"].strip() == "已退订"
    assert rows["wait@example.com"].strip() == "待确认"
    assert rows["gone@example.com"].strip() == "退信"
    assert rows["angry@example.com"].strip() == "投诉"
    assert page  # a plain search still answers


def test_the_status_filter_lists_only_that_status(client: TestClient) -> None:
    _seed()
    login(client, "ops")
    for status, expected in (
        ("unsubscribed", {"left@example.com"}),
        ("active", {"live@example.com"}),
        ("bounced", {"gone@example.com"}),
        ("complained", {"angry@example.com"}),
        ("unconfirmed", {"wait@example.com"}),
    ):
        page = client.get("/console/subscribers", params={"status": status}).text
        assert set(_rows(page)) == expected, status
        assert 'id="bulk-all-note"' in page  # no "act on every match" under a status filter
