"""The open pixel's hot-path helpers agree with the plain definitions they replace."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from newsletter.core import clock
from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import TokenError
from newsletter.core.safety.signing import _hmac_states, delivery_of, delivery_token, sign, verify
from newsletter.models import Event
from newsletter.tracking.classify import _tag, network_tag
from newsletter.tracking.intake import _ip_hash, make_event, open_payload
from newsletter.tracking.rollups import ingest
from newsletter.web.app import create_asgi
from newsletter.web.public import PIXEL
from tests.conftest import make_settings
from tests.tracking.helpers import BROWSER, sent_send


@pytest.fixture
def keyed(tmp_path):  # type: ignore[no-untyped-def]
    s = make_settings(tmp_path, old_secret_keys=["an-old-key"])
    reset_settings(s)
    yield s
    reset_settings(None)


def _verify_d(token: str) -> int | None:
    try:
        return verify(token, "d").fields[0]
    except TokenError:
        return None


def test_delivery_of_agrees_with_verify(keyed) -> None:  # type: ignore[no-untyped-def]
    good = delivery_token(123_456)
    old = sign("d", 77, keys=[b"an-old-key"])
    cases = [good, old, good[:-1] + "A", good[:-1] + "B", "d" + good[2:], good.replace(".", ""),
             "", ".", "d.", f"d1-2.{good.split('.')[1]}", sign("u", 1, 2), good + "x" * 80,
             good.replace("d", "dé", 1), good[:-1] + "é", "d\x00." + good.split(".")[1],
             good + ".x", "D" + good[1:]]  # fmt: skip
    for tok in cases:
        assert delivery_of(tok) == _verify_d(tok), tok
    assert delivery_of(good) == 123_456 and delivery_of(old) == 77


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.text(max_size=70), st.integers(min_value=0, max_value=10**12))
def test_delivery_of_agrees_with_verify_on_anything(keyed, text, did) -> None:  # type: ignore[no-untyped-def]
    tok = delivery_token(did)
    for candidate in (text, "d" + text, tok[: len(tok) // 2] + text, tok + text):
        assert delivery_of(candidate) == _verify_d(candidate)


@pytest.mark.parametrize("key", [b"", b"k", b"x" * 64, b"y" * 65, b"z" * 200])
def test_precomputed_hmac_states_are_hmac_sha256(key: bytes) -> None:
    inner, outer = _hmac_states(key)
    for msg in (b"", b"d9ix", b"d" * 1000):
        h = inner.copy()
        h.update(msg)
        o = outer.copy()
        o.update(h.digest())
        assert o.digest() == hmac.digest(key, msg, "sha256")


def test_open_payload_is_make_event_as_json(keyed) -> None:  # type: ignore[no-untyped-def]
    tok = delivery_token(42)
    for ua, ip in ((BROWSER, "203.0.113.9"), ('quote " back\\slash 中文 \x01', "17.1.2.3"),
                   ("", ""), ("x" * 500, "2001:db8::1")):  # fmt: skip
        raw = open_payload(tok, ua, ip)
        assert raw is not None
        got = json.loads(raw)
        want = make_event("open", tok, user_agent=ua, ip=ip)
        assert want is not None
        assert list(got) == list(want)
        for k in ("uid", "at"):
            assert type(got[k]) is type(want[k])
            got.pop(k), want.pop(k)
        assert got == want
        assert raw.decode("ascii")  # ASCII JSON, as json.dumps writes it
    assert open_payload("d1.AAAAAAAAAAAAAAAA", BROWSER, "203.0.113.9") is None


def test_network_tag_fast_path_agrees_with_ipaddress() -> None:
    def slow(ip: str) -> str:  # the lookup as it was written before the fast path
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return ""
        return _tag(addr.version, int(addr))

    for ip in ("17.0.0.1", "17.255.255.255", "18.0.0.0", "66.249.80.1", "40.92.1.1", "127.0.0.1",
               "1.2.3", "01.2.3.4", "1.2.3.4.5", "256.1.1.1", " 17.0.0.1", "17.0.0.1\x00", "",
               "garbage", "::ffff:17.0.0.1", "2001:db8::1", "17.0.0.1 ", "１７.0.0.1"):  # fmt: skip
        assert network_tag(ip) == slow(ip), ip
    assert network_tag("17.1.2.3") == "apple"


def test_ip_hash_is_the_salted_hash_of_the_prefix(keyed) -> None:  # type: ignore[no-untyped-def]
    salt = keyed.secret_key.get_secret_value()
    for ip, prefix in (("203.0.113.9", "203.0.113"), ("2001:db8:1:2::1", "2001:db8:1")):
        assert _ip_hash(ip) == hashlib.sha256((salt + prefix).encode()).hexdigest()[:16]


def test_event_time_in_microseconds_is_stored_exactly(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(2)
    t0 = clock.micros()  # the product's clock, which stamps the events
    e1 = make_event("open", delivery_token(ids["deliveries"][0]), user_agent=BROWSER)
    e2 = make_event("open", delivery_token(ids["deliveries"][1]), user_agent=BROWSER)
    assert e1 is not None and e2 is not None
    assert t0 <= e1["at"] <= clock.micros()
    e1["at"] = 1_795_600_000_123_456
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=e1["at"])
    e2["at"] = when.isoformat()  # the ISO form (older events, the spool, the tests' helpers)
    assert ingest([e1, e2]) == 2
    with session_scope() as s:
        at = [v for _d, v in s.execute(select(Event.delivery_id, Event.occurred_at))]
    assert [v if v.tzinfo else v.replace(tzinfo=dt.UTC) for v in at] == [when, when]


def test_asgi_fast_path_with_redis_down_stores_directly(pg_settings) -> None:  # type: ignore[no-untyped-def]
    ids = sent_send(2)
    reset_settings(pg_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    with TestClient(create_asgi()) as client:
        for d in ids["deliveries"]:
            r = client.get(f"/o/{delivery_token(d)}.gif", headers={"User-Agent": BROWSER})
            assert r.status_code == 200 and r.content == PIXEL
    with session_scope() as s:
        assert len(list(s.scalars(select(Event.id)))) == 2
