"""Second hostile pass (2026-12-07) on the features added that day: the welcome series,
review notices, publications and moving issues, the subscriber history, and the
bilingual message splitting (``catalogue.for_reader``, the console's ``said`` filter).

Each test plays an attacker against the real web app on PostgreSQL (see
docs/security.md, "second hostile pass")."""

from __future__ import annotations

import time
from typing import Any

from newsletter.core.catalogue import for_reader
from newsletter.web.console import services as svc
from newsletter.web.console.pages.common import said
from tests.console.seed import principal
from tests.factories import seed

# -- the bilingual splitting: no input makes it slow --------------------------------------


def _timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def test_splitting_a_long_message_takes_linear_time() -> None:
    """A message quoting a long word (an item title, a link) once made the "where"
    pattern scan to the end of the word from every character: 20,000 letters cost ~8 s
    per message shown. Each shape that could do that is checked here; 40,000 characters
    of each must split in well under a second."""
    n = 40_000
    words = [
        "a" * n,  # a long word with no @ or /
        "“" * n,  # opening quotes that never close
        "《" * n,
        "1a" * (n // 2),
        "a." * (n // 2),
    ]
    for word in words:
        text = f"条目 1「{word}」没有内容 / item 1「{word}」has no content"
        assert _timed(for_reader, text, "zh-Hans") < 1.0, word[:4]
        assert _timed(said, text, "en") < 1.0, word[:4]
    # the splitting itself is unchanged for ordinary messages
    assert for_reader("文件 'a.md' 不存在 / file 'a.md' not found", "en") == "file 'a.md' not found"
    assert for_reader("链接 3 无效 / link 3 is bad", "zh-Hans") == "链接 3 无效"
    # the Chinese half lacks the address the English half names: both are shown
    assert for_reader("发送失败 / sending to a@b.org failed", "zh-Hans") == (
        "发送失败 / sending to a@b.org failed"
    )


def test_an_issue_with_a_huge_item_title_does_not_stall_its_page(as_role: Any) -> None:
    """An editor uploads an issue whose empty item has a 40,000-character title; its lint
    warning quotes the title in both halves. Anyone opening the issue page (marketing
    too) must not cost the server seconds of CPU per view."""
    seed(1)
    title = "长" + "a" * 40_000
    src = (
        "---\ntitle: 周报\nnumber: 48\npublication: 政策周报\n---\n\n## 一、政策法规\n\n"
        f"### 1. {title}\n\n### 2. 第二条\n\n正文。\n"
    )
    issue = svc.upload_issue(principal("ops"), "big.md", src.encode())
    viewer = as_role("marketing")
    start = time.perf_counter()
    r = viewer.client.get(f"/console/issues/{issue['id']}")
    took = time.perf_counter() - start
    assert r.status_code == 200
    assert "item-empty" in r.text  # the warning is on the page
    assert took < 5.0, f"the issue page took {took:.1f} s"
