"""Ingestion: idempotence, classification, the click-pattern rule, rollups = GROUP BY."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update

from newsletter.core.db import session_scope
from newsletter.models import Delivery, Event, RollupHourly
from newsletter.models.tracking import RollupLinkCls, RollupSegment, TrackingFirst
from newsletter.reports.stats import send_stats
from newsletter.tracking.classify import classify, network_tag
from newsletter.tracking.rollups import ingest, rebuild
from tests.tracking.helpers import BROWSER, SCANNER, ev, sent_send, snapshot

H = dt.timedelta(hours=1)


def test_duplicates_are_stored_and_counted_once(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(2)
    t0 = ids["sent_at"] + H
    d = ids["deliveries"][0]
    batch = [ev("a", "open", d, t0), ev("b", "open", d, t0 + H), ev("a", "open", d, t0)]
    assert ingest(batch) == 2
    assert ingest(batch) == 0  # redelivered: nothing new
    with session_scope() as s:
        st_ = send_stats(s, ids["send"])
    assert st_["opens_unique"] == 1 and st_["opens_total_human"] == 2
    assert [h["opens_human"] for h in st_["hourly"]] == [1, 1]


def test_mpp_and_scanner_traffic_is_machine(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(4)
    d1, d2, d3, d4 = ids["deliveries"]
    t = ids["sent_at"] + dt.timedelta(minutes=2)
    ingest([
        ev("m1", "open", d1, t, ua="Mozilla/5.0"),  # Apple MPP: bare UA
        ev("m2", "open", d2, t, ua=BROWSER, net="apple"),  # from Apple's proxy network
        ev("s1", "open", d3, t, ua=SCANNER),
        ev("s2", "click", d3, t, ua=SCANNER, link=1),
        ev("s3", "click", d4, ids["sent_at"] + dt.timedelta(seconds=3), link=1),  # too soon
        ev("s4", "click", d4, t, ua=BROWSER, net="microsoft_eop", link=1),
    ])  # fmt: skip
    with session_scope() as s:
        rules = dict(s.execute(select(Event.uid, Event.rule)).all())
        classes = set(s.scalars(select(Event.cls)))
        st_ = send_stats(s, ids["send"])
    assert classes == {"machine"}
    assert rules == {
        "m1": "apple_mpp_bare_ua",
        "m2": "apple_mpp_network",
        "s1": "scanner_ua",
        "s2": "scanner_ua",
        "s3": "click_within_10s",
        "s4": "scanner_network",
    }
    assert st_["opens_unique"] == 0 and st_["opens_total_machine"] == 3
    assert st_["opens_unique_machine"] == 3
    assert st_["clicks_unique"] == 0 and st_["clicks_machine"] == 3


def test_rules_and_networks_are_data() -> None:
    assert network_tag("17.58.1.2") == "apple"
    assert network_tag("40.107.3.4") == "microsoft_eop"
    assert network_tag("203.0.113.9") == "" and network_tag("nonsense") == ""
    assert classify("open", "Mozilla/5.0 (Windows NT 10.0) GoogleImageProxy", 600)[0] == "human"
    assert classify("open", "", 600) == ("machine", "empty_ua")
    assert classify("open", "SomethingOdd/1.0", 600) == ("unknown", "no_rule")


def test_every_link_clicked_within_seconds_is_machine(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(2, links=3)
    d, other = ids["deliveries"]
    t = ids["sent_at"] + H
    s1 = dt.timedelta(seconds=1)
    # Two batches: the first click already counted as human, then the burst completes.
    ingest([ev("c1", "click", d, t, link=1)])
    with session_scope() as s:
        assert send_stats(s, ids["send"])["clicks_unique"] == 1
    ingest(
        [
            ev("c2", "click", d, t + s1, link=2),
            ev("c3", "click", d, t + 2 * s1, link=3),
            ev("p1", "click", other, t, link=1),
            ev("p2", "click", other, t + H, link=2),
        ]
    )
    with session_scope() as s:
        st_ = send_stats(s, ids["send"])
        rules = dict(s.execute(select(Event.uid, Event.rule)).all())
        first = s.scalar(select(Delivery.first_click_at).where(Delivery.id == d))
    assert {rules[u] for u in ("c1", "c2", "c3")} == {"all_links_burst"}
    assert rules["p1"] == rules["p2"] == "browser_ua"  # a person, an hour apart: human
    assert first is None
    assert st_["clicks_unique"] == 1 and st_["clicks_total"] == 2
    assert st_["clicks_machine"] == 3 and st_["clicks_unique_machine"] == 1
    assert snapshot(ids["send"])[:2] == _rebuilt(ids["send"])[:2]


def test_disabled_open_tracking_records_nothing(any_db) -> None:  # type: ignore[no-untyped-def]
    from newsletter.models import Publication

    ids = sent_send(1)
    with session_scope() as s:
        s.execute(update(Publication).values(track_opens=False, ip_handling="none"))
    d = ids["deliveries"][0]
    t = ids["sent_at"] + H
    click = ev("k", "click", d, t, link=1)
    click["ip"] = "abcd"
    assert ingest([ev("o", "open", d, t), click]) == 1
    with session_scope() as s:
        e = s.scalars(select(Event)).one()
    assert e.kind == "click" and e.ip_hash is None


def _rebuilt(send_id: int):  # type: ignore[no-untyped-def]
    with session_scope() as s:
        rebuild(s, send_id)
    return snapshot(send_id)


UAS = [BROWSER, "Mozilla/5.0", SCANNER, "", "Odd/1.0"]
event_st = st.tuples(
    st.integers(0, 3),  # delivery index
    st.sampled_from(["open", "open", "click"]),
    st.integers(0, 4),  # user agent
    st.integers(1, 3),  # link
    st.integers(0, 3 * 3600 * 2),  # half-seconds after sending
    st.integers(0, 60),  # uid pool: duplicates happen
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seq=st.lists(event_st, min_size=1, max_size=40), cuts=st.lists(st.integers(1, 40), max_size=4)
)
def test_rollups_equal_group_by_over_raw_events(any_db, seq, cuts) -> None:  # type: ignore[no-untyped-def]
    ids = _seeded()
    with session_scope() as s:
        for tbl in (Event, RollupSegment, RollupHourly, RollupLinkCls, TrackingFirst):
            s.execute(delete(tbl))
        s.execute(update(Delivery).values(first_open_at=None, first_click_at=None))
    dels, t0 = ids["deliveries"], ids["sent_at"]
    events = [
        ev(f"u{uid}", kind, dels[di], t0 + dt.timedelta(seconds=half / 2), ua=UAS[ua],
           link=link if kind == "click" else None)
        for di, kind, ua, link, half, uid in seq
    ]  # fmt: skip
    # uid reuse must mean the same event (as a redelivery would be)
    first: dict[str, dict] = {}
    events = [first.setdefault(e["uid"], e) for e in events]
    bounds = sorted({0, len(events), *[c for c in cuts if c < len(events)]})
    for a, b in itertools.pairwise(bounds):
        ingest(events[a:b])
    ingest(events[: len(events) // 2])  # a redelivered half
    incremental = snapshot(ids["send"])
    assert incremental == _rebuilt(ids["send"])
    with session_scope() as s:
        raw = dict(
            ((k, c), n)
            for k, c, n in s.execute(
                select(Event.kind, Event.cls, func.count()).group_by(Event.kind, Event.cls)
            )
        )
    rolled: dict[tuple[str, str], int] = {}
    for key, (total, _u) in incremental[0].items():
        if len(key) == 4:  # the segment rollup (the hourly one sums to the same)
            rolled[(key[2], key[3])] = rolled.get((key[2], key[3]), 0) + total
    assert rolled == raw


_SEEDED: dict[str, dict] = {}


def _seeded() -> dict:
    from newsletter.core.config import get_settings

    key = str(get_settings().var_dir)
    if key not in _SEEDED:
        _SEEDED[key] = sent_send(4, links=3)
    return _SEEDED[key]
