"""The stop-flag listener (``delivery.stopwatch``): a pause or cancel is heard without a
Redis round trip per message, and the sending loop's check falls back to reading the flag
whenever the listener cannot vouch for itself: before it subscribed, after its connection
was reset, and while its connection is open but silent."""

from __future__ import annotations

import redis
from sqlalchemy import update

from newsletter.core.config import get_settings, reset_settings
from newsletter.core.db import session_scope
from newsletter.delivery import stopwatch
from newsletter.delivery.group import _Stop
from newsletter.delivery.sends import stop_flag, stop_key
from newsletter.delivery.stopwatch import DEAF_AFTER, Watcher, stop_channel
from newsletter.models import Send
from tests.factories import seed
from tests.forward import Forward, free_port
from tests.waiting import wait_for


def _with_redis(pg_settings, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    import uuid

    reset_settings(
        pg_settings.model_copy(
            update={"redis_url": redis_url, "redis_prefix": f"t{uuid.uuid4().hex[:8]}:"}
        )
    )


def _set_state(send_id: int, state: str) -> None:
    with session_scope() as s:
        s.execute(update(Send).where(Send.id == send_id).values(state=state))


def test_a_pause_is_heard_without_asking_redis(pg_settings, redis_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _with_redis(pg_settings, redis_url)
    ids = seed(3)
    _set_state(ids["send"], "sending")
    w = stopwatch.watcher()
    assert w is not None and w.wait_ready(10)
    from newsletter.core import redis as core_redis

    real = core_redis.redis_client()
    gets: list[str] = []

    class Counting:
        def get(self, key: str) -> object:
            gets.append(key)
            return real.get(key)

    monkeypatch.setattr(core_redis, "redis_client", Counting)
    stop = _Stop(ids["send"])
    for _ in range(50):
        assert stop() is None
    assert gets == [stop_key(ids["send"])]  # read once under this subscription
    monkeypatch.undo()
    _set_state(ids["send"], "paused")
    stop_flag(ids["send"], "paused")
    wait_for(lambda: stop() == "paused", timeout=5, what="the published pause to be heard")
    _set_state(ids["send"], "sending")
    stop_flag(ids["send"], None)
    wait_for(lambda: w.heard(ids["send"]) == (True, None), timeout=5,
             what="the lowered flag to be heard")  # fmt: skip
    assert stop() is None


def test_a_flag_raised_before_the_listener_subscribed_is_read(pg_settings, redis_url) -> None:  # type: ignore[no-untyped-def]
    _with_redis(pg_settings, redis_url)
    ids = seed(2)
    _set_state(ids["send"], "cancelled")
    client = redis.Redis.from_url(redis_url)
    client.set(stop_key(ids["send"]), "cancelled", ex=60)  # before any listener exists
    stopwatch.reset()
    stop = _Stop(ids["send"])
    assert stop() == "cancelled"  # whether or not the listener had subscribed yet
    w = stopwatch.watcher()
    assert w is not None and w.wait_ready(10)
    assert w.heard(ids["send"]) == (False, None)  # nothing was published to it
    assert stop() == "cancelled"  # what the read said stands under this subscription


def test_a_reset_or_silent_connection_falls_back_to_reading_the_flag(redis_url) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    target = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    fwd = Forward(port, (str(target.get("host", "127.0.0.1")), int(target.get("port", 6379))))
    fwd.open()
    channel = f"t-stop-{port}"
    w = Watcher(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2), channel)
    try:
        assert w.wait_ready(10)
        first = w.generation()
        assert first is not None
        publisher = redis.Redis.from_url(redis_url)
        publisher.publish(channel, "41 paused")
        wait_for(lambda: w.heard(41) == (True, "paused"), timeout=5, what="the message")
        # a partition: the connection stays open and carries nothing
        fwd.silent.set()
        wait_for(lambda: w.generation() is None, timeout=DEAF_AFTER + 5,
                 what="the silent listener to count itself deaf")  # fmt: skip
        fwd.silent.clear()
        fwd.close()  # and a reset: every connection cut
        fwd.open()
        wait_for(lambda: (w.generation() or 0) > first, timeout=30,
                 what="a new subscription after the reset")  # fmt: skip
        # what was heard before the gap is forgotten: the loop reads the flag again
        assert w.heard(41) == (False, None)
        publisher.publish(channel, "41 cancelled")
        wait_for(lambda: w.heard(41) == (True, "cancelled"), timeout=5, what="the new message")
    finally:
        w.close()
        fwd.close()


def test_the_channel_follows_the_settings(pg_settings, redis_url) -> None:  # type: ignore[no-untyped-def]
    """A settings change (another prefix) gets a listener on the new channel, not the old."""
    _with_redis(pg_settings, redis_url)
    a = stopwatch.watcher()
    old = stop_channel()
    _with_redis(pg_settings, redis_url)
    b = stopwatch.watcher()
    assert stop_channel() != old and a is not b
    assert get_settings().redis_prefix in stop_channel()
