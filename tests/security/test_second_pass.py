"""Second hostile pass (2026-12-07) on the features added that day: the welcome series,
review notices, publications and moving issues, the subscriber history, and the
bilingual message splitting (``catalogue.for_reader``, the console's ``said`` filter).

Each test plays an attacker against the real web app on PostgreSQL (see
docs/security.md, "second hostile pass")."""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.core.catalogue import for_reader
from newsletter.core.db import session_scope
from newsletter.models import Issue, MailingList, WelcomeStep
from newsletter.web.console import services as svc
from newsletter.web.console.pages.common import said
from tests.console.seed import principal
from tests.factories import seed

STEP = "---\ntitle: 欢迎订阅\n---\n\n感谢订阅。[往期](https://news.example.org/archive/)\n"


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


# -- the welcome series: two editors at once ----------------------------------------------


def _two_lists() -> tuple[int, int]:
    ids = seed(1)
    with session_scope() as s:
        other = MailingList(name="第二个列表")
        s.add(other)
        s.flush()
        return ids["list"], other.id


def test_editors_adding_welcome_steps_at_once_get_answers_not_server_errors(
    as_role: Any,
) -> None:
    """Six adds at once, on two lists of one publication: each is either added or
    refused with a code (never a 500 from a unique constraint: positions within a list,
    hidden issue numbers within the publication), positions stay 1…n and the cap of
    five steps per list holds."""
    first, second = _two_lists()
    editor = as_role("editor")
    cookies = dict(editor.client.cookies)
    barrier = threading.Barrier(6)
    got: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def add(list_id: int) -> None:
        with TestClient(
            editor.client.app,
            base_url="https://testserver",
            follow_redirects=False,
            raise_server_exceptions=False,
        ) as c:
            c.cookies.update(cookies)
            barrier.wait()
            r = c.post(
                f"/api/lists/{list_id}/welcome",
                json={"source": STEP},
                headers={"X-CSRF-Token": editor.csrf},
            )
        with lock:
            got.append((list_id, r.status_code, r.text[:200]))

    for _round in range(2):
        threads = [threading.Thread(target=add, args=(lid,)) for lid in (first, second) * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(code in (201, 409) for _, code, _ in got), got
    with session_scope() as s:
        for list_id in (first, second):
            positions = sorted(
                s.scalars(select(WelcomeStep.position).where(WelcomeStep.list_id == list_id))
            )
            added = sum(1 for lid, code, _ in got if lid == list_id and code == 201)
            assert positions == list(range(1, len(positions) + 1)) and len(positions) == added
            assert len(positions) == min(6, 5)  # six asked, five allowed
        hidden = s.scalar(select(func.count()).where(Issue.kind == "welcome"))
        assert hidden == 10
    refused = [text for _, code, text in got if code == 409]
    assert refused and all("welcome.too_many" in t for t in refused), refused


def test_reorder_and_delete_at_once_keep_the_series_whole(as_role: Any) -> None:
    """One editor moves steps while another deletes them: answers, never a 500, and the
    positions stay 1…n."""
    list_id, _ = _two_lists()
    editor = as_role("editor")
    ids = []
    for _ in range(5):
        r = editor.client.post(
            f"/api/lists/{list_id}/welcome",
            json={"source": STEP},
            headers={"X-CSRF-Token": editor.csrf},
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    cookies = dict(editor.client.cookies)
    barrier = threading.Barrier(6)
    codes: list[int] = []
    lock = threading.Lock()

    def act(method: str, path: str, body: dict[str, str] | None) -> None:
        with TestClient(
            editor.client.app,
            base_url="https://testserver",
            follow_redirects=False,
            raise_server_exceptions=False,
        ) as c:
            c.cookies.update(cookies)
            barrier.wait()
            r = c.request(method, path, json=body, headers={"X-CSRF-Token": editor.csrf})
        with lock:
            codes.append(r.status_code)

    base = f"/api/lists/{list_id}/welcome"
    jobs = [
        ("POST", f"{base}/{ids[1]}/move", {"direction": "up"}),
        ("POST", f"{base}/{ids[3]}/move", {"direction": "down"}),
        ("POST", f"{base}/{ids[2]}/move", {"direction": "up"}),
        ("DELETE", f"{base}/{ids[0]}", None),
        ("DELETE", f"{base}/{ids[4]}", None),
        ("POST", f"{base}/{ids[2]}/move", {"direction": "down"}),
    ]
    threads = [threading.Thread(target=act, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c in (200, 204, 404) for c in codes), codes
    with session_scope() as s:
        positions = sorted(
            s.scalars(select(WelcomeStep.position).where(WelcomeStep.list_id == list_id))
        )
    assert positions == [1, 2, 3]


# -- review notices: no mail flood ------------------------------------------------------

SMALL = (
    "---\ntitle: 周报\nnumber: {n}\npublication: 政策周报\n---\n\n## 一、政策法规\n\n"
    "### 1. 第一条\n\n正文。\n"
)


def test_an_author_cycling_review_cannot_flood_the_approvers(
    as_role: Any, pg_app: Any, smtp_sink: Any
) -> None:
    """An editor submits their own issue for review and sends it back, twenty times over
    (both are their own steps). Each submission used to write a "waits for your review"
    notice for every approver, each mailed: twenty mails to each. An approver has at
    most one unread notice of a kind per issue, so one mail each, however often."""
    from newsletter.core.config import reset_settings
    from newsletter.delivery.notices import mail_due
    from newsletter.models import ReviewNotice, User

    port, sink = smtp_sink
    reset_settings(pg_app.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    seed(1)
    with session_scope() as s:
        for u in s.scalars(select(User).where(User.username.in_(("admin", "ops")))):
            u.email = f"{u.username}@example.org"
    issue = svc.upload_issue(principal("editor"), "49.md", SMALL.format(n=49).encode())
    editor = as_role("editor")
    for i in range(20):
        r = editor.post(f"/console/issues/{issue['id']}/review")
        assert r.status_code == 303, r.text[:200]
        r = editor.post(
            f"/console/issues/{issue['id']}/request-changes", data={"note": f"再改 {i}"}
        )
        assert r.status_code == 303, r.text[:200]
    assert mail_due(limit=500) == 2
    rcpts = sorted(r for _f, rs, _d in sink.messages for r in rs)
    assert rcpts == ["admin@example.org", "ops@example.org"]
    with session_scope() as s:
        unread = s.execute(
            select(ReviewNotice.recipient, func.count())
            .where(ReviewNotice.read_at.is_(None), ReviewNotice.kind == "ready")
            .group_by(ReviewNotice.recipient)
        ).all()
    assert dict(unread) == {"admin": 1, "ops": 1}
    # once read, the next submission tells them again
    admin = as_role("admin")
    assert admin.post("/console/notices/read").status_code == 303
    assert editor.post(f"/console/issues/{issue['id']}/review").status_code == 303
    assert mail_due() == 1
    assert len(sink.messages) == 3 and sink.messages[-1][1] == ["admin@example.org"]
