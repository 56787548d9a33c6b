"""Fixtures for the WeChat channel: a real fake server over HTTP, a stored sample issue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newsletter.core.config import Settings, reset_settings
from newsletter.core.wechat_settings import WeChatSettings, reset_wechat_settings
from newsletter.devtools.wechat_fake import FakeWeChat, run_fake
from newsletter.wechat.access_token import clear_local_tokens
from newsletter.wechat.publisher import wechat_send_for
from tests.wechat.helpers import add_approved


@pytest.fixture
def fake() -> Iterator[tuple[FakeWeChat, str]]:
    with run_fake(FakeWeChat()) as (f, url):
        yield f, url


@pytest.fixture
def wx(fake: tuple[FakeWeChat, str]) -> Iterator[WeChatSettings]:
    f, url = fake
    s = WeChatSettings(
        appid=f.appid,
        secret=f.secret,
        base_url=url,
        mode="both",
        backoff=0.01,
        poll_interval=0.01,
        poll_timeout=5,
        too_fast_wait=0.01,
        token="callback-token-1",
    )  # type: ignore[arg-type]
    reset_wechat_settings(s)
    clear_local_tokens()
    yield s
    reset_wechat_settings(None)
    clear_local_tokens()


@pytest.fixture
def issue_id(sqlite_settings: Settings) -> int:
    return add_approved()


@pytest.fixture
def send_id(issue_id: int, wx: WeChatSettings) -> int:
    return wechat_send_for(issue_id, settings=wx)


@pytest.fixture
def pg_redis(pg_settings: Settings, redis_url: str) -> Iterator[Settings]:
    """Production mode: PostgreSQL and the token shared through Redis."""
    s = pg_settings.model_copy(update={"redis_url": redis_url})
    reset_settings(s)
    yield s
