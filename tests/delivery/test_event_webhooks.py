"""Event webhooks against a real HTTP receiver, on PostgreSQL.

The receiver listens on 127.0.0.2, which the pinned resolver plays as a public address
(as in tests/security/test_feeds.py); 127.0.0.1 stays what it is, internal. Signatures
are checked with the ``standardwebhooks`` package's own verifier. Time is the product's
clock, moved by the test instead of waiting for the backoff.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from newsletter.audience.service import unsubscribe
from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.core.events import WebhookAttempt, WebhookEndpoint, WebhookOutbox, emit
from newsletter.core.safety.pinned import set_resolver
from newsletter.delivery import eventhooks
from newsletter.models import AuditLog, Subscriber
from tests.conftest import MovableClock
from tests.factories import seed


class Receiver:
    """An HTTP server that records every POST and answers the next scripted status."""

    def __init__(self, host: str, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.statuses = list(statuses or [])
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    outer.requests.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def names() -> Iterator[None]:
    """hooks.example.test is public (127.0.0.2); inside.example.test is 127.0.0.1."""
    table = {"hooks.example.test": ["127.0.0.2"], "inside.example.test": ["127.0.0.1"]}
    set_resolver(lambda host, port: table.get(host, []), public=frozenset({"127.0.0.2"}))
    yield
    set_resolver(None)


@pytest.fixture
def public_receiver(names: None) -> Iterator[Receiver]:
    r = Receiver("127.0.0.2")
    yield r
    r.close()


def _endpoint(url: str, events: list[str]) -> tuple[int, str]:
    with session_scope() as s:
        e, secret = eventhooks.create_endpoint(s, url, events, "test")
        return e.id, secret


def _verified(secret: str, request: tuple[dict[str, str], bytes, int]) -> dict[str, Any]:
    headers, body, _status = request
    out = Webhook(secret).verify(body, headers)  # raises on a bad signature or timestamp
    assert isinstance(out, dict)
    return out


def test_events_are_signed_and_verified_by_standardwebhooks(
    pg_settings: Settings, public_receiver: Receiver
) -> None:
    ids = seed(3)
    url = f"http://hooks.example.test:{public_receiver.port}/in"
    endpoint, secret = _endpoint(url, ["subscriber.unsubscribed"])
    assert secret.startswith("whsec_")
    with session_scope() as s:
        subs = s.execute(select(Subscriber.id, Subscriber.email).order_by(Subscriber.id)).all()
        stored = s.get(WebhookEndpoint, endpoint)
        assert stored is not None and secret not in stored.secret  # kept encrypted
    # An unsubscribe whose transaction rolls back leaves no event behind.
    with pytest.raises(RuntimeError), session_scope() as s:
        unsubscribe(s, subs[0].id, ids["list"], reason="web")
        raise RuntimeError("rolled back")
    with session_scope() as s:
        assert s.scalar(select(WebhookOutbox.id)) is None
        for sub in subs:
            unsubscribe(s, sub.id, ids["list"], reason="web")
    assert eventhooks.deliver_due() == 3
    assert len(public_receiver.requests) == 3
    seen = []
    for req in public_receiver.requests:
        payload = _verified(secret, req)
        assert payload["type"] == "subscriber.unsubscribed"
        assert req[0]["webhook-id"].startswith("msg_")
        seen.append((payload["data"]["subscriber_id"], payload["data"]["email"]))
        # ids, codes and the address; nothing else about the person
        assert set(payload["data"]) == {"subscriber_id", "email", "list_id", "reason"}
    assert seen == [(sub.id, sub.email) for sub in subs]
    # A tampered body does not verify.
    headers, body, _ = public_receiver.requests[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"web", b"WEB"), headers)
    # Nothing left to send; every attempt is logged with its status.
    assert eventhooks.deliver_due() == 0
    with session_scope() as s:
        log = eventhooks.attempts(s, endpoint)
    assert [a["status"] for a in log] == [200, 200, 200]


def test_a_receiver_failing_three_times_gets_each_event_once_in_order(
    pg_settings: Settings, names: None, moved_clock: MovableClock
) -> None:
    receiver = Receiver("127.0.0.2", statuses=[500, 503, 500])
    try:
        seed(1)
        url = f"http://hooks.example.test:{receiver.port}/in"
        endpoint, secret = _endpoint(url, ["message.opened", "message.clicked"])
        sent: list[tuple[int, str]] = []
        with session_scope() as s:
            for n in range(6):  # two subscribers, interleaved
                type_ = "message.opened" if n % 2 == 0 else "message.clicked"
                emit(s, type_, [({"n": n, "subscriber_id": 10 + n % 2}, 10 + n % 2)])
                sent.append((n, type_))
        assert eventhooks.deliver_due() == 0  # 500: the oldest waits, and so do the rest
        for wait in (30, 60, 120):  # the backoff: 30 s, then doubling
            moved_clock.advance(wait - 1)
            assert eventhooks.deliver_due() == 0  # not yet due: no request
            moved_clock.advance(1)
            delivered = eventhooks.deliver_due()
        assert delivered == 6
        statuses = [status for _h, _b, status in receiver.requests]
        assert statuses == [500, 503, 500] + [200] * 6
        first_id = receiver.requests[0][0]["webhook-id"]
        assert {h["webhook-id"] for h, _b, _s in receiver.requests[:4]} == {first_id}
        ok = [_verified(secret, r) for r in receiver.requests if r[2] == 200]
        assert [(p["data"]["n"], p["type"]) for p in ok] == sent  # once each, in order
        ok_ids = [h["webhook-id"] for h, _b, status in receiver.requests if status == 200]
        assert len(set(ok_ids)) == 6
        assert eventhooks.deliver_due() == 0
        with session_scope() as s:
            states = s.scalars(select(WebhookOutbox.state).order_by(WebhookOutbox.id)).all()
            attempts = s.scalars(
                select(WebhookAttempt.status).where(WebhookAttempt.endpoint_id == endpoint)
            ).all()
        assert states == ["delivered"] * 6
        assert sorted(attempts, key=lambda x: x or 0) == [200] * 6 + [500, 500, 503]
    finally:
        receiver.close()


def test_an_endpoint_failing_for_a_day_is_disabled_with_an_alert(
    pg_settings: Settings, names: None, moved_clock: MovableClock
) -> None:
    receiver = Receiver("127.0.0.2", statuses=[500] * 100)
    try:
        seed(1)
        endpoint, _secret = _endpoint(
            f"http://hooks.example.test:{receiver.port}/in", ["send.finished"]
        )
        with session_scope() as s:
            emit(s, "send.finished", [({"send_id": 1}, None)])
        rounds = 0
        while True:
            eventhooks.deliver_due()
            rounds += 1
            with session_scope() as s:
                e = s.get(WebhookEndpoint, endpoint)
                assert e is not None
                if not e.active:
                    break
            assert rounds < 40
            moved_clock.advance(2 * 3600)
        assert rounds >= 12  # 24 hours of tries at most 2 hours apart
        with session_scope() as s:
            e = s.get(WebhookEndpoint, endpoint)
            assert e is not None and e.disabled_reason.startswith("failing")
            assert s.scalar(select(WebhookOutbox.state)) == "failed"
            alert = s.scalar(select(AuditLog).where(AuditLog.action == "notify.webhook_disabled"))
            assert alert is not None and str(endpoint) in alert.target
        before = len(receiver.requests)
        with session_scope() as s:
            emit(s, "send.finished", [({"send_id": 2}, None)])
        assert eventhooks.deliver_due() == 0
        assert len(receiver.requests) == before  # a disabled endpoint gets nothing
    finally:
        receiver.close()


def test_a_receiver_on_a_private_address_is_refused(pg_settings: Settings, names: None) -> None:
    inside = Receiver("127.0.0.1")
    table = {"hooks.example.test": ["127.0.0.2"]}
    try:
        seed(1)
        for url in (
            f"http://inside.example.test:{inside.port}/in",
            f"http://127.0.0.1:{inside.port}/in",
            f"http://[::1]:{inside.port}/in",
            "http://169.254.169.254/latest/meta-data/",
        ):
            with pytest.raises(eventhooks.WebhookError, match="非公网地址"), session_scope() as s:
                eventhooks.create_endpoint(s, url, ["send.finished"], "test")
        # A name that was public when it was added and now answers 127.0.0.1 (rebinding):
        # the connection is refused before it is made, and the attempt says why.
        endpoint, _secret = _endpoint(
            f"http://hooks.example.test:{inside.port}/in", ["send.finished"]
        )
        table["hooks.example.test"] = ["127.0.0.1"]
        set_resolver(lambda host, port: table.get(host, []), public=frozenset({"127.0.0.2"}))
        with session_scope() as s:
            emit(s, "send.finished", [({"send_id": 1}, None)])
        assert eventhooks.deliver_due() == 0
        with session_scope() as s:
            log = eventhooks.attempts(s, endpoint)
        assert len(log) == 1 and log[0]["status"] is None
        assert "AddressRefused" in log[0]["error"]
        assert inside.requests == []
    finally:
        inside.close()
