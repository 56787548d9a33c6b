"""Segments: a JSON filter compiled to SQL with bound values, used by planning."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from newsletter.audience.segments import SegmentError, count
from newsletter.core.db import session_scope
from newsletter.delivery.run import start
from newsletter.models import Delivery, Segment, Send, Subscriber
from tests.factories import seed


def _attrs() -> None:
    with session_scope() as s:
        for sub in s.scalars(select(Subscriber)):
            n = int(sub.email.split("@")[0].removeprefix("reader"))
            sub.attributes = {"city": "北京" if n % 2 == 0 else "台北", "行业": "金融"}


def test_attribute_list_variant_and_boolean_logic(any_db) -> None:  # type: ignore[no-untyped-def]
    seed(9)  # variants: zh-Hant for 0, 3, 6
    _attrs()
    with session_scope() as s:
        assert count(s, {"attr": "city", "op": "eq", "value": "北京"}) == 5
        assert count(s, {"all": [{"attr": "city", "value": "台北"}, {"variant": "zh-Hant"}]}) == 1
        assert count(s, {"any": [{"variant": "zh-Hant"}, {"attr": "city", "value": "台北"}]}) == 6
        assert count(s, {"not": {"list": "周报订阅"}}) == 0
        assert count(s, {"attr": "行业", "op": "in", "value": ["金融", "能源"]}) == 9


def test_injection_attempts_are_values_not_sql(any_db) -> None:  # type: ignore[no-untyped-def]
    seed(3)
    with session_scope() as s:
        assert count(s, {"attr": "city", "value": "x' OR '1'='1"}) == 0
        with pytest.raises(SegmentError, match="bad attribute name"):
            count(s, {"attr": "city') OR 1=1 --", "value": "x"})
        with pytest.raises(SegmentError, match="unknown condition"):
            count(s, {"sql": "DROP TABLE subscriber"})


def test_activity_segment_drives_planning(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = seed(6)
    start(ids["send"])
    with session_scope() as s:
        first_two = list(s.scalars(select(Delivery.id).order_by(Delivery.id).limit(2)))
        s.execute(
            update(Delivery)
            .where(Delivery.id.in_(first_two))
            .values(first_open_at=dt.datetime.now(dt.UTC))
        )
        seg = Segment(name="最近打开", definition={"opened_in_last_sends": 3})
        s.add(seg)
        s.flush()
        assert count(s, seg.definition) == 2
        again = Send(
            publication_id=ids["publication"],
            issue_id=ids["issue"],
            list_id=ids["list"],
            segment_id=seg.id,
            state="draft",
            resend_reason="a second send of the same issue, on purpose",
        )
        s.add(again)
        s.flush()
        again_id = again.id
    planned, _ = start(again_id)
    assert planned == 2
