"""Every errcode has one catalogue message, Chinese first, and a run prints it once.

The runs are real ``newsletter wechat publish`` processes, so whatever the library
logs reaches the terminal as it would for an operator (no pytest log capture).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.core.config import Settings
from newsletter.core.wechat_settings import WeChatSettings
from newsletter.devtools.wechat_fake import FakeWeChat
from newsletter.wechat.errors import _MESSAGES, catalogue, error_for
from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[2]
FakeT = tuple[FakeWeChat, str]
SUBMIT = "/cgi-bin/freepublish/submit"
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_errcode_has_one_message_in_both_languages() -> None:
    for code in [*_MESSAGES, 99999]:
        zh, en = catalogue(code)
        assert CJK.search(zh) and en[0].isascii() and en[0].isalpha(), code
        text = str(error_for(code, "errmsg rid: 1", SUBMIT))
        assert "\n" not in text and text.count(zh) == 1 and text.count(en) == 1
        assert text.index(zh) < text.index(en) and f"errcode {code}" in text


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [(40001, 2), (45009, 75), (-1, 75)],
)
def test_a_failed_run_prints_the_message_once_chinese_first(
    sqlite_settings: Settings,
    issue_id: int,
    fake: FakeT,
    wx: WeChatSettings,
    code: int,
    exit_code: int,
) -> None:
    f, url = fake
    if code == -1:
        f.busy(10, {SUBMIT})  # more than every retry
    elif code == 40001:
        f.fail_next[SUBMIT] = [40001, 40001]  # still rejected after the one refresh
    else:
        f.fail_next[SUBMIT] = code
    env = clean_env()
    env.update(
        PYTHONPATH=str(ROOT),
        NEWSLETTER_VAR_DIR=str(sqlite_settings.var_dir),
        NEWSLETTER_SECRET_KEY=sqlite_settings.secret_key.get_secret_value(),
        NEWSLETTER_BASE_URL=sqlite_settings.base_url,
        NEWSLETTER_WECHAT_APPID=f.appid,
        NEWSLETTER_WECHAT_SECRET=f.secret,
        NEWSLETTER_WECHAT_BASE_URL=url,
        NEWSLETTER_WECHAT_MODE="both",
        NEWSLETTER_WECHAT_BACKOFF="0.01",
        NEWSLETTER_WECHAT_POLL_INTERVAL="0.01",
    )
    out = subprocess.run(
        [sys.executable, "-m", "newsletter.cli.main", "wechat", "publish", str(issue_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == exit_code, out.stdout + out.stderr
    zh, en = catalogue(code)
    both = out.stdout + out.stderr
    assert both.count(zh) == 1 and both.count(en) == 1, both
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("错误：微信") and lines[0].index(zh) < lines[0].index(en)
    assert f"errcode {code}" in lines[0] and "Traceback" not in both
