"""Second hostile pass (2026-12-07) on the features added that day: the welcome series,
review notices, publications and moving issues, the subscriber history, and the
bilingual message splitting (``catalogue.for_reader``, the console's ``said`` filter).

Each test plays an attacker against the real web app on PostgreSQL (see
docs/security.md, "second hostile pass")."""

from __future__ import annotations

import re
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


# -- stored script in the new fields, shown elsewhere -------------------------------------

XSS = '"><svg onload=alert(1)><script>alert(2)</script><img src=x onerror=alert(3)>'
_LIVE = re.compile(r"<(script|svg|img)\b[^>]*(onload|onerror|>alert)", re.I)


def test_script_in_the_new_fields_stays_text_wherever_it_is_shown(
    as_role: Any, pg_app: Any
) -> None:
    """A display name, a review note, a publication name, a welcome step's title, an
    SMTP reply and an unsubscribe reason, each hostile, on every page that shows them:
    the overview's notices, the subscriber's history, the welcome pages, the settings
    (the publications' list and ?pub=), the issue page's move form and the account page."""
    import datetime as dt

    from newsletter.models import Delivery, Send, Subscriber, Subscription

    ids = seed(1)
    admin, editor, ops = as_role("admin"), as_role("editor"), as_role("ops")
    r = editor.post("/console/account/profile", data={"display_name": XSS, "email": ""})
    assert r.status_code == 303
    r = admin.post("/console/publications", data={"slug": "monthly", "name": XSS})
    assert r.status_code == 303 and "monthly" in r.headers["location"]
    issue = svc.upload_issue(principal("ops"), "49.md", SMALL.format(n=49).encode())
    assert ops.post(f"/console/issues/{issue['id']}/review").status_code == 303
    r = editor.post(f"/console/issues/{issue['id']}/request-changes", data={"note": XSS})
    assert r.status_code == 303
    step_src = '---\ntitle: "' + XSS.replace('"', '\\"') + '"\n---\n\n欢迎。\n'
    r = editor.client.post(
        f"/api/lists/{ids['list']}/welcome",
        json={"source": step_src},
        headers={"X-CSRF-Token": editor.csrf},
    )
    assert r.status_code == 201, r.text
    step = r.json()
    with session_scope() as s:
        sub = s.scalars(select(Subscriber)).one()
        now = dt.datetime.now(dt.UTC)
        for send_id in (step["send_id"], ids["send"]):
            s.add(Delivery(send_id=send_id, subscriber_id=sub.id, variant="zh-Hans",
                           state="bounced", last_code=550, last_reply=XSS, sent_at=now))  # fmt: skip
        other = MailingList(name="离开的列表")
        s.add(other)
        s.flush()
        s.add(Subscription(subscriber_id=sub.id, list_id=other.id, status="unsubscribed",
                           unsubscribed_at=now, reason=XSS[:200]))  # fmt: skip
        sub_id = sub.id
        assert s.get(Send, step["send_id"]) is not None
    pages = [
        (ops, "/console/"),
        (admin, f"/console/subscribers/{sub_id}"),
        (editor, f"/console/lists/{ids['list']}/welcome"),
        (editor, f"/console/lists/{ids['list']}/welcome/{step['id']}"),
        (admin, "/console/settings"),
        (admin, "/console/settings?pub=monthly"),
        (editor, f"/console/issues/{issue['id']}"),
        (editor, "/console/account"),
    ]
    for who, path in pages:
        r = who.client.get(path)
        assert r.status_code == 200, path
        assert not _LIVE.search(r.text), path
        assert "&lt;script&gt;alert(2)" in r.text or "&#34;&gt;&lt;svg" in r.text, path  # shown
    r = admin.client.get("/console/audit")
    assert r.status_code == 200 and not _LIVE.search(r.text)
    r = editor.client.get(f"/api/lists/{ids['list']}/welcome/{step['id']}")
    assert r.headers["content-type"].startswith("application/json")


def test_notice_mail_headers_cannot_be_injected(pg_app: Any, smtp_sink: Any) -> None:
    """The actor's display name (a single sign-on claim can carry anything), the issue's
    title and the note go into the notice mail: the wire has exactly our headers, one To
    (the recipient's own address), the subject on one logical line."""
    import email
    import email.policy

    from newsletter.core.config import reset_settings
    from newsletter.delivery.notices import mail_due
    from newsletter.issues.review import request_changes, submit_for_review
    from newsletter.models import User

    port, sink = smtp_sink
    reset_settings(pg_app.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    seed(1)
    title = "周报 =?utf-8?q?Bcc=3A_x=40evil=2Eexample?= \u2028Bcc: y@evil.example"
    src = SMALL.format(n=49).replace("title: 周报", f'title: "{title}"')
    issue = svc.upload_issue(principal("ops"), "49.md", src.encode())
    with session_scope() as s:
        for u in s.scalars(select(User)):
            u.email = None
            if u.username == "ops":
                u.email = "ops@example.org"
            if u.username == "editor":
                u.display_name = "编辑\r\nBcc: z@evil.example\r\n\r\n"
        it = s.get(Issue, issue["id"])
        assert it is not None
        submit_for_review(s, it, "ops")
        request_changes(s, it, "editor", "请改\r\nBcc: w@evil.example")
    assert mail_due() == 1
    ((_from, rcpts, data),) = sink.messages
    assert rcpts == ["ops@example.org"]
    head = data.split(b"\r\n\r\n", 1)[0]
    names = [
        line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line[:1] not in b" \t"
    ]
    assert b"bcc" not in names and names.count(b"to") == 1, names
    assert b"\n" not in head.replace(b"\r\n", b"")  # no bare LF
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["To"] == "ops@example.org" and "\n" not in str(msg["Subject"])
    assert "evil.example" not in str(msg["To"])


# -- moving an issue while ops creates its send ------------------------------------------


def test_moving_an_issue_while_its_send_is_created_leaves_no_stray_send(
    as_role: Any, pg_app: Any, monkeypatch: Any
) -> None:
    """An editor moves an approved issue to another publication while ops creates a send
    of it. The move checks "no sends" and the send checks "approved" in two transactions
    at once: both used to pass, leaving a send of the old publication for an issue now in
    review in the new one. Now either the move or the send is refused."""
    from sqlalchemy import text

    from newsletter.core.errors import NewsletterError
    from newsletter.issues import publications
    from newsletter.models import Send

    ids = seed(1)
    issue = svc.upload_issue(principal("ops"), "49.md", SMALL.format(n=49).encode())
    svc.approve_issue(principal("editor"), issue["id"])
    svc.create_publication(principal("admin"), "monthly", "月报")
    checked, created = threading.Event(), threading.Event()
    real_audit = publications.audit

    def send_is_waiting_on_a_lock() -> bool:
        with session_scope() as s:
            return bool(
                s.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                )
            )

    def audit_after_the_other(*args: Any, **kw: Any) -> Any:
        checked.set()  # the move's checks have passed; let the send be created now
        while not created.is_set() and not send_is_waiting_on_a_lock():
            created.wait(0.05)
        return real_audit(*args, **kw)

    monkeypatch.setattr(publications, "audit", audit_after_the_other)
    moved: list[object] = []

    def move() -> None:
        try:
            moved.append(svc.move_issue(principal("editor"), issue["id"], "monthly"))
        except NewsletterError as exc:
            moved.append(exc)

    mover = threading.Thread(target=move)
    mover.start()
    assert checked.wait(30)
    try:
        svc.create_send(principal("ops"), issue["id"], ids["list"])
        refused = False
    except NewsletterError:
        refused = True
    finally:
        created.set()
    mover.join(30)
    with session_scope() as s:
        it = s.get(Issue, issue["id"])
        assert it is not None
        sends = list(s.scalars(select(Send).where(Send.issue_id == it.id)))
        assert all(x.publication_id == it.publication_id for x in sends), (
            "a send of one publication for an issue in another",
            moved,
            it.status,
        )
    assert refused or isinstance(moved[0], NewsletterError)


# -- ids changed by hand, roles ------------------------------------------------------------


def test_a_step_is_reached_only_through_its_own_list_and_roles_hold(as_role: Any) -> None:
    """A step of list A named under list B's URL is a 404 for every operation (read, edit,
    move, delete, preview); marketing reads the series through the API but changes
    nothing; only an admin creates publications or opens another's settings; marketing
    cannot move an issue."""
    first, second = _two_lists()
    editor, marketing = as_role("editor"), as_role("marketing")
    h = {"X-CSRF-Token": editor.csrf}
    r = editor.client.post(f"/api/lists/{first}/welcome", json={"source": STEP}, headers=h)
    assert r.status_code == 201
    step = r.json()["id"]
    wrong = f"/api/lists/{second}/welcome/{step}"
    assert editor.client.get(wrong).status_code == 404
    assert editor.client.patch(wrong, json={"delay": "1d"}, headers=h).status_code == 404
    assert (
        editor.client.post(f"{wrong}/move", json={"direction": "up"}, headers=h).status_code == 404
    )
    assert editor.client.delete(wrong, headers=h).status_code == 404
    page = f"/console/lists/{second}/welcome/{step}"
    assert editor.client.get(page).status_code == 404
    assert editor.client.get(f"{page}/frame").status_code == 404
    assert editor.post(page, data={"delay": "1d"}).status_code == 404
    assert editor.post(f"{page}/delete").status_code == 404
    with session_scope() as s:
        st = s.get(WelcomeStep, step)
        assert st is not None and st.list_id == first and st.delay_seconds == 0
    # marketing: reads, changes nothing
    mh = {"X-CSRF-Token": marketing.csrf}
    assert marketing.client.get(f"/api/lists/{first}/welcome").status_code == 200
    own = f"/api/lists/{first}/welcome/{step}"
    assert marketing.client.patch(own, json={"delay": "1d"}, headers=mh).status_code == 403
    assert marketing.client.delete(own, headers=mh).status_code == 403
    assert marketing.post(f"/console/lists/{first}/welcome/{step}/delete").status_code == 403
    assert marketing.client.get(f"/console/lists/{first}/welcome/{step}/frame").status_code == 403
    # publications: admin only; a move needs an editor
    assert editor.post("/console/publications", data={"slug": "x1", "name": "x"}).status_code == 403
    assert editor.client.get("/console/settings?pub=weekly").status_code == 403
    issue_id = seed_issue_id()
    r = marketing.post(f"/console/issues/{issue_id}/move", data={"publication": "weekly"})
    assert r.status_code == 403
    # without the form's token nothing changes
    r = editor.client.post(f"/console/lists/{first}/welcome/{step}/delete")
    assert r.status_code == 403
    r = editor.client.post("/console/account/profile", data={"display_name": "x"})
    assert r.status_code == 403


def seed_issue_id() -> int:
    with session_scope() as s:
        found = s.scalar(select(Issue.id).where(Issue.kind == "weekly"))
        assert found is not None
        return int(found)


def test_a_welcome_steps_hidden_issue_cannot_be_moved_approved_or_sent(as_role: Any) -> None:
    """The hidden issue behind a step (its id is on the subscriber history's links) is
    not a weekly issue: moving it is a 404, approving it and sending or scheduling it to
    a list are refused, and nothing is created."""
    from newsletter.models import Send

    list_id, _ = _two_lists()
    editor, ops = as_role("editor"), as_role("ops")
    r = editor.client.post(
        f"/api/lists/{list_id}/welcome",
        json={"source": STEP},
        headers={"X-CSRF-Token": editor.csrf},
    )
    hidden = r.json()["issue_id"]
    r = editor.post(f"/console/issues/{hidden}/move", data={"publication": "weekly"})
    assert r.status_code == 404
    ops.post(f"/console/issues/{hidden}/approve")
    oh = {"X-CSRF-Token": ops.csrf}
    for mode in ("now", "schedule"):
        r = ops.client.post(
            "/api/sends",
            json={"issue_id": hidden, "list_id": list_id, "mode": mode, "start": True},
            headers=oh,
        )
        assert 400 <= r.status_code < 500, r.text
    with session_scope() as s:
        it = s.get(Issue, hidden)
        assert it is not None and it.status == "draft" and it.kind == "welcome"
        assert it.sealed_version is None
        assert s.scalar(select(func.count()).where(Send.issue_id == hidden)) == 1  # its own
