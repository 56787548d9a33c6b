"""Without Redis, processes share one access token through the database (issue 29).

Three real processes call WeChat with the token while the fake, like WeChat, drops the
old token at a forced refresh. One fetch serves them all, each rejection (40001 or
42001) costs one fetch however many processes meet it, and none of them fails.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.core.config import Settings
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.devtools.wechat_fake import FakeWeChat
from newsletter.wechat.access_token import TokenStore
from newsletter.wechat.client import WeChatClient
from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[2]
FakeT = tuple[FakeWeChat, str]

#: A process that calls WeChat N times per line it reads: "ok" or "error <errcode>".
CHILD = """
import sys
from newsletter.wechat.client import WeChatClient
from newsletter.wechat.errors import WeChatError
client = WeChatClient()
print("ready", flush=True)
for line in sys.stdin:
    try:
        for _ in range(int(line)):
            client.call("/cgi-bin/draft/count", method="GET")
    except WeChatError as exc:
        print("error", exc.errcode, flush=True)
    else:
        print("ok", flush=True)
"""


@pytest.fixture
def children(
    pg_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> Iterator[list[subprocess.Popen[str]]]:
    f, url = fake
    assert not pg_settings.redis_url
    env = clean_env()
    env.update(
        PYTHONPATH=str(ROOT),
        NEWSLETTER_DATABASE_URL=pg_settings.db_url,
        NEWSLETTER_VAR_DIR=str(pg_settings.var_dir),
        NEWSLETTER_WECHAT_APPID=f.appid,
        NEWSLETTER_WECHAT_SECRET=f.secret,
        NEWSLETTER_WECHAT_BASE_URL=url,
        NEWSLETTER_WECHAT_BACKOFF="0.01",
        NEWSLETTER_REDIS_PREFIX=pg_settings.redis_prefix,
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        yield procs
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
            p.wait(timeout=30)


def _round(procs: list[subprocess.Popen[str]], calls: int) -> list[str]:
    """Every process makes ``calls`` calls at once; what each reported."""
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"{calls}\n")
        p.stdin.flush()
    return [p.stdout.readline().strip() for p in procs if p.stdout is not None]


def test_three_processes_one_fetch_per_generation(
    children: list[subprocess.Popen[str]], fake: FakeT, wx: WeChatSettings
) -> None:
    f, _ = fake
    store = WeChatClient(wx).tokens
    assert store._redis is None

    assert _round(children, 15) == ["ok"] * 3
    assert len(f.calls("/cgi-bin/stable_token")) == 1 and store.generation() == 1

    # another party forced a refresh: every process holds a token WeChat calls stale
    f.revoke_tokens()
    assert _round(children, 15) == ["ok"] * 3
    assert len(f.calls("/cgi-bin/stable_token")) == 2 and store.generation() == 2
    assert f.forced_token_calls() == 1
    assert len(f.calls("/cgi-bin/draft/count", ok=False)) >= 1  # the 40001s happened

    # the token expired everywhere at once (42001)
    f.expire_tokens()
    assert _round(children, 15) == ["ok"] * 3
    assert len(f.calls("/cgi-bin/stable_token")) == 3 and store.generation() == 3
    assert f.forced_token_calls() == 2
    assert len(f.calls("/cgi-bin/draft/count", ok=True)) == 3 * 15 * 3


def test_a_forced_refresh_drops_the_old_token_at_once(
    pg_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    """The fake, like WeChat: stable_token with force_refresh leaves no overlap."""
    f, _ = fake
    c = WeChatClient(wx)
    old = c._fetch_token(False)[0]
    new = c._fetch_token(True)[0]
    assert new != old
    assert f._check_token({"access_token": old})["errcode"] == 40001
    assert f._check_token({"access_token": new}) is None


def test_a_rejected_token_is_refreshed_once_across_stores(
    pg_settings: Settings, fake: FakeT, wx: WeChatSettings
) -> None:
    """Two stores (as two processes) that saw the same token rejected: one fetch."""
    f, url = fake
    a = TokenStore(url, f.appid)
    b = TokenStore(url, f.appid)
    fetched: list[bool] = []

    def fetch(force: bool) -> tuple[str, int]:
        fetched.append(force)
        return f"tok{len(fetched)}", 7200

    first = a.get(fetch)
    assert b.get(fetch) == first and fetched == [False]
    second = a.invalidate(first, fetch)
    assert b.invalidate(first, fetch) == second != first
    assert fetched == [False, True] and a.generation() == 2
