"""Stats, exports, trend, unsubscribe/bounce/complaint events, retention and erasure."""

from __future__ import annotations

import csv
import datetime as dt
import io

from sqlalchemy import func, select, update

from newsletter.audience.service import erase_subscriber, unsubscribe
from newsletter.core.db import session_scope
from newsletter.delivery.bounces import BounceResult, apply_result
from newsletter.models import Delivery, Event, Publication, Subscriber
from newsletter.reports.stats import (
    export_links_csv,
    export_recipients_csv,
    send_stats,
    sparkline,
    trend,
)
from newsletter.tracking.retention import purge
from newsletter.tracking.rollups import ingest
from tests.tracking.helpers import ev, sent_send

H = dt.timedelta(hours=1)


def test_stats_segments_exports_and_lifecycle_events(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(6, links=2)
    dels, t = ids["deliveries"], ids["sent_at"] + H
    with session_scope() as s:  # give the audience some mailbox providers
        for i, dom in enumerate(["qq.com", "163.com", "126.com", "gmail.com", "hotmail.com"]):
            sub_id = s.scalar(select(Delivery.subscriber_id).where(Delivery.id == dels[i]))
            s.execute(update(Subscriber).where(Subscriber.id == sub_id)
                      .values(email=f"r{i}@{dom}"))  # fmt: skip
    ingest(
        [
            ev("o1", "open", dels[0], t),
            ev("o2", "open", dels[1], t + H),
            ev("o3", "open", dels[1], t + 2 * H),
            ev("m", "open", dels[3], t, ua="Mozilla/5.0"),
            ev("c1", "click", dels[0], t + H, link=2),
            ev("c2", "click", dels[1], t + H, link=2),
        ]
    )
    with session_scope() as s:
        sid = s.scalar(select(Delivery.subscriber_id).where(Delivery.id == dels[2]))
        assert unsubscribe(s, sid, ids["list"], reason="one-click") == 1
        assert unsubscribe(s, sid, ids["list"], reason="one-click") == 0  # idempotent
    apply_result(BounceResult("complaint", delivery_id=dels[4], source="arf"))
    apply_result(BounceResult("hard", delivery_id=dels[5], source="dsn", status="5.1.1"))
    apply_result(BounceResult("hard", delivery_id=dels[5], source="dsn", status="5.1.1"))
    with session_scope() as s:
        st_ = send_stats(s, ids["send"])
    assert st_["delivered"] == 5 and st_["deliveries_bounced"] == 1
    assert (st_["opens_unique"], st_["opens_total_human"], st_["opens_total_machine"]) == (2, 3, 1)
    assert (st_["clicks_unique"], st_["click_to_open_rate"]) == (2, 1.0)
    assert (st_["unsubscribes"], st_["complaints"], st_["bounces"]) == (1, 1, 1)
    dom = {g["group"]: g for g in st_["by_domain"]}
    assert dom["netease"]["opens_unique"] == 1 and dom["netease"]["delivered"] == 2
    assert dom["qq"]["click_rate"] == 1.0 and dom["microsoft"]["complaints"] == 1
    assert sum(v["opens_unique"] for v in st_["by_variant"]) == 2
    assert st_["links"][0]["position"] == 2 and st_["links"][0]["unique"] == 2
    assert [h["opens_human"] for h in st_["hourly"]][-3:] == [1, 1, 1]
    assert sparkline([v for _h, v in st_["opens_by_hour"]]) == "███"
    assert st_["wechat"] is None
    rows = list(csv.DictReader(io.StringIO("".join(export_recipients_csv(ids["send"])))))
    assert len(rows) == 6 and rows[1]["opens_human"] == "2" and rows[1]["domain_group"] == "netease"
    assert rows[2]["unsubscribed"] == "1" and rows[5]["bounced"] == "1"
    with session_scope() as s:
        links = list(csv.DictReader(io.StringIO("".join(export_links_csv(s, ids["send"])))))
        tr = trend(s, last=5)
    assert [r["unique"] for r in links] == ["0", "2"]
    assert len(tr) == 1 and tr[0]["opens_unique"] == 2


def test_retention_purges_raw_events_and_keeps_stats(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(2)
    old = ids["sent_at"] - dt.timedelta(days=400)
    ingest(
        [
            ev("old", "open", ids["deliveries"][0], old),
            ev("new", "open", ids["deliveries"][1], ids["sent_at"] + H),
        ]
    )
    with session_scope() as s:
        before = send_stats(s, ids["send"])
        assert purge(s) == {"weekly": 1}
    with session_scope() as s:
        assert list(s.scalars(select(Event.uid))) == ["new"]
        after = send_stats(s, ids["send"])
        s.execute(update(Publication).values(event_retention_days=0))
        assert purge(s, now=ids["sent_at"] + dt.timedelta(days=9999)) == {}
    assert before["opens_unique"] == after["opens_unique"] == 2


def test_erasure_anonymises_events(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(1)
    e = ev("x", "open", ids["deliveries"][0], ids["sent_at"] + H)
    e["ip"] = "0123456789abcdef"
    ingest([e])
    with session_scope() as s:
        sid = s.scalar(select(Delivery.subscriber_id))
        erase_subscriber(s, sid, actor="test")
    with session_scope() as s:
        row = s.scalars(select(Event)).one()
        st_ = send_stats(s, ids["send"])
        n = s.scalar(select(func.count()).select_from(Event))
    assert row.ip_hash is None and row.user_agent is None and n == 1
    assert st_["opens_unique"] == 1  # the aggregate stays, the person is gone
