"""Preference centre, personal-data export and erasure."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.audience.importer import import_file
from newsletter.audience.service import get_or_create_list
from newsletter.core.db import session_scope
from newsletter.core.safety.signing import unsubscribe_token
from newsletter.delivery.run import drive_inline
from newsletter.models import Subscriber, Subscription, Suppression
from newsletter.web.app import create_app
from tests.factories import seed


def test_preferences_change_variant_and_lists(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = seed(2)
    with session_scope() as s:
        other = get_or_create_list(s, "月度精选")
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "reader1@example.com"))
        assert sid is not None
        s.add(Subscription(subscriber_id=sid, list_id=other.id, status="active"))
    tok = unsubscribe_token(sid, ids["list"])
    client = TestClient(create_app())
    page = client.get(f"/p/{tok}")
    assert (
        page.status_code == 200 and "月度精选" in page.text and "reader1@example.com" in page.text
    )
    r = client.post(f"/p/{tok}", data={"variant": "zh-Hant", "list": [str(ids["list"])]})
    assert r.status_code == 200 and "已儲存" in r.text
    with session_scope() as s:
        sub = s.get(Subscriber, sid)
        assert sub is not None and sub.variant == "zh-Hant"
        states = dict(
            s.execute(
                select(Subscription.list_id, Subscription.status).where(
                    Subscription.subscriber_id == sid
                )
            ).all()
        )
    assert states == {ids["list"]: "active", other.id: "unsubscribed"}


def test_data_export_then_erasure_keeps_only_a_hash(any_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = seed(2)
    assert drive_inline(ids["send"]) == "finished"
    with session_scope() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "reader0@example.com"))
    assert sid is not None
    tok = unsubscribe_token(sid, ids["list"])
    client = TestClient(create_app())
    data = json.loads(client.get(f"/p/{tok}/data").text)
    assert data["email"] == "reader0@example.com" and data["deliveries"][0]["state"] == "sent"
    assert client.post(f"/p/{tok}/erase", data={}).status_code == 400  # needs the confirmation
    r = client.post(f"/p/{tok}/erase", data={"confirm": "yes"})
    assert r.status_code == 200
    with session_scope() as s:
        sub = s.get(Subscriber, sid)
        assert sub is not None and sub.status == "erased" and "reader0" not in sub.email
        sups = list(s.scalars(select(Suppression.email)))
    assert len(sups) == 1 and sups[0].startswith("sha256:")
    assert client.get(f"/p/{tok}").status_code == 400
    # re-importing the erased address does not bring it back
    f = tmp_path / "again.csv"
    f.write_text("email\nreader0@example.com\n", encoding="utf-8")
    assert import_file(f, "周报订阅").suppressed == 1
