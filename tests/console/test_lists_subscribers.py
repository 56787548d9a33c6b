"""Lists and subscribers as listmonk users expect: create, rename, delete lists; edit,
delete and bulk-act on subscribers from a search.  Ops only, audited."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.audience.importer import import_file
from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.models import AuditLog, MailingList, Subscriber, Subscription, Suppression
from tests.console.helpers import client_as, login

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _wait(cond: object, seconds: float = 30, fail: bool = True) -> bool:
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    assert not fail, "timed out"
    return False


def _actions() -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def _flash(c: TestClient, r: object) -> str:
    page = c.get(r.headers["location"]).text  # type: ignore[attr-defined]
    m = re.search(r'class="flash[^"]*"[^>]*>(.*?)</div>', page, re.S)
    return m.group(1) if m else ""


def test_create_rename_and_delete_a_list(client: TestClient, console_settings: Settings) -> None:
    csrf = login(client, "ops")
    r = client.post(
        "/console/lists", data={"csrf": csrf, "name": "  试读  名单 ", "double_opt_in": "on"}
    )
    assert r.status_code == 303 and "已创建" in _flash(client, r)
    with session_scope() as s:
        ml = s.scalar(select(MailingList).where(MailingList.name == "试读 名单"))
        assert ml is not None and ml.double_opt_in
        list_id = ml.id
    assert "试读 名单" in client.get("/console/subscribers").text
    r = client.post("/console/lists", data={"csrf": csrf, "name": "试读 名单"})
    assert "已存在" in _flash(client, r)
    r = client.post("/console/lists", data={"csrf": csrf, "name": "   "})
    assert "不能为空" in _flash(client, r)
    page = client.get(f"/console/lists/{list_id}")
    assert page.status_code == 200
    # the share section: the form's address, the iframe snippet and the QR codes
    assert f"/subscribe/{list_id}/embed?src=embed" in page.text and "&lt;iframe" in page.text
    assert f'src="/subscribe/{list_id}/qr.svg"' in page.text
    assert client.get(f"/subscribe/{list_id}/qr.svg").status_code == 200
    r = client.post(
        f"/console/lists/{list_id}", data={"csrf": csrf, "name": "试读", "description": "新读者"}
    )
    assert r.status_code == 303
    with session_scope() as s:
        ml2 = s.get(MailingList, list_id)
        assert ml2 is not None and ml2.name == "试读" and not ml2.double_opt_in
    r = client.post(f"/console/lists/{list_id}/delete", data={"csrf": csrf})
    assert r.status_code == 303 and "已删除" in _flash(client, r)
    with session_scope() as s:
        assert s.get(MailingList, list_id) is None
    assert client.post(f"/console/lists/{list_id}/delete", data={"csrf": csrf}).status_code == 404
    assert _actions()[-3:] == ["list.create", "list.update", "list.delete"]
    # Marketing and editors cannot.
    m, mcsrf = client_as("editor")
    assert m.post("/console/lists", data={"csrf": mcsrf, "name": "x"}).status_code == 403


def test_edit_and_bulk_act_on_a_search(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    import_file(EXAMPLES / "subscribers.csv", "周报订阅", report_path=tmp_path / "console-r.csv")
    csrf = login(client, "ops")
    client.post("/console/lists", data={"csrf": csrf, "name": "VIP"})
    with session_scope() as s:
        weekly = s.scalar(select(MailingList.id).where(MailingList.name == "周报订阅"))
        vip = s.scalar(select(MailingList.id).where(MailingList.name == "VIP"))
        ids = list(s.scalars(select(Subscriber.id).order_by(Subscriber.id).limit(4)))
    page = client.get("/console/subscribers", params={"q": "", "list_id": str(weekly)}).text
    assert 'id="bulk"' in page and page.count('name="ids"') >= 4
    # Edit one.
    r = client.post(
        f"/console/subscribers/{ids[0]}",
        data={"csrf": csrf, "name": "王小明", "variant": "zh-Hant"},
    )
    assert r.status_code == 303
    assert "王小明" in client.get(f"/console/subscribers/{ids[0]}").text
    r = client.post(f"/console/subscribers/{ids[0]}", data={"csrf": csrf, "variant": "xx"})
    assert "zh-Hans" in _flash(client, r)
    # Move two to VIP (out of the weekly list), unsubscribe one, block one, delete one.
    base = {"csrf": csrf, "q": "", "list_id": str(weekly)}
    r = client.post(
        "/console/subscribers/bulk",
        data={**base, "action": "move", "to_list": str(vip), "ids": ids[:2]},
    )
    assert r.status_code == 303 and "2 人已移动" in _flash(client, r)
    r = client.post(
        "/console/subscribers/bulk", data={**base, "action": "unsubscribe", "ids": [ids[2]]}
    )
    assert "1 人已退订" in _flash(client, r)
    client.post("/console/subscribers/bulk", data={**base, "action": "block", "ids": [ids[3]]})
    r = client.post("/console/subscribers/bulk", data={**base, "action": "move", "ids": [ids[0]]})
    assert "目标列表" in _flash(client, r)  # a move needs a target
    r = client.post("/console/subscribers/bulk", data={**base, "action": "block"})
    assert "勾选" in _flash(client, r)
    with session_scope() as s:
        assert s.get(Subscription, (ids[0], vip)) is not None
        assert s.get(Subscription, (ids[0], weekly)) is None
        unsub = s.get(Subscription, (ids[2], weekly))
        assert unsub is not None and unsub.status == "unsubscribed"
        blocked = s.get(Subscriber, ids[3])
        assert blocked is not None and blocked.status == "blocked"
        assert s.scalar(select(Suppression).where(Suppression.email == blocked.email))
    r = client.post(f"/console/subscribers/{ids[1]}/delete", data={"csrf": csrf})
    assert r.status_code == 303
    with session_scope() as s:
        gone = s.get(Subscriber, ids[1])
        assert gone is not None and gone.status == "erased" and "@" in gone.email
        assert gone.email.endswith("erased.invalid")
    assert client.get(f"/console/subscribers/{ids[1]}").status_code == 404
    acts = _actions()
    assert acts.count("subscribers.bulk") >= 4 and "subscriber.update" in acts
    # An editor cannot bulk-act.
    e, ecsrf = client_as("editor")
    r = e.post(
        "/console/subscribers/bulk", data={"csrf": ecsrf, "action": "delete", "ids": [ids[0]]}
    )
    assert r.status_code == 403


def test_bounces_page_lists_reasons(client: TestClient, console_settings: Settings) -> None:
    from newsletter.audience.service import suppress

    with session_scope() as s:
        suppress(s, "gone@example.org", "hard_bounce", note="SMTP 5.1.1 user unknown")
        suppress(s, "angry@example.org", "complaint", note="ARF abuse")
        suppress(s, "manual@example.org", "manual", note="asked by phone")
    login(client, "ops")
    page = client.get("/console/bounces").text
    assert "5.1.1 user unknown" in page and "ARF abuse" in page and "manual@" not in page
    assert re.search(r'id="bounce-total">共 2<', page)
    only = client.get("/console/bounces", params={"kind": "complaint", "p": "x"}).text
    assert "angry@" in only and "gone@" not in only
    m, _csrf = client_as("marketing")
    assert m.get("/console/bounces").status_code == 403


def test_sends_search_filter_count_and_paging(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    import datetime as dt

    from newsletter.web.console import services as svc
    from tests.console.seed import principal, seed

    data = seed(tmp_path)
    list_id = next(x["id"] for x in data["lists"] if x["name"] == "周报订阅")
    for day in (1, 2):
        svc.create_send(
            principal("ops"),
            data["issue"]["id"],
            list_id,
            schedule=True,
            at=dt.datetime(2099, 12, day, 9, tzinfo=dt.UTC),
        )
    login(client, "marketing")
    page = client.get("/console/sends", params={"q": "#47"}).text
    assert re.search(r'id="sends-total">共 3<', page)
    assert re.search(
        r'id="sends-total">共 0<', client.get("/console/sends", params={"q": "#999"}).text
    )
    assert re.search(
        r'id="sends-total">共 3<',
        client.get(
            "/console/sends", params={"q": data["issue"]["title"][:4], "state": "scheduled"}
        ).text,
    )
    assert re.search(
        r'id="sends-total">共 0<', client.get("/console/sends", params={"state": "finished"}).text
    )
    paged = svc.search_sends("", "", 2, per_page=2)
    assert paged["total"] == 3 and paged["pages"] == 2 and len(paged["rows"]) == 1
    assert client.get("/console/sends", params={"p": "99999999999"}).status_code == 200


def test_subject_test_in_the_console(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    """Ops sets subjects on a scheduled send, sees the variants side by side once it runs,
    and decides early; marketing sees the table but cannot change it."""
    from newsletter.delivery.run import drive_inline
    from newsletter.models import Send
    from tests.console.seed import seed

    ids = seed(tmp_path)
    send_id = ids["send"]["id"]
    csrf = login(client, "ops")
    page = client.get(f"/console/sends/{send_id}")
    assert 'id="subject-form"' in page.text and "这次发送没有主题测试" in page.text
    bad = client.post(
        f"/console/subject-tests/{send_id}", data={"csrf": csrf, "subject": ["只有一个"]}
    )
    assert "2 至 4" in _flash(client, bad)
    ok = client.post(
        f"/console/subject-tests/{send_id}",
        data={
            "csrf": csrf,
            "subject": ["政策周报第47期", "本周四份重点文件", ""],
            "share": "50",
            "wait_minutes": "60",
            "metric": "clicks",
        },
    )
    assert "已设置" in _flash(client, ok)
    with session_scope() as s:
        send = s.get(Send, send_id)
        assert send is not None and send.subject_variants == ["政策周报第47期", "本周四份重点文件"]
        assert send.test_metric == "clicks" and send.test_wait_seconds == 3600
    assert "send.subjects" in _actions()

    # marketing: reads, cannot change
    m, mcsrf = client_as("marketing")
    assert 'id="subject-form"' not in m.get(f"/console/sends/{send_id}").text
    assert (
        m.post(
            f"/console/subject-tests/{send_id}", data={"csrf": mcsrf, "subject": ["a", "b"]}
        ).status_code
        == 403
    )

    # the test share goes out; the variants show side by side
    client.post(f"/console/sends/{send_id}/start", data={"csrf": csrf})  # runs in a thread

    def sent_in_test() -> bool:
        from newsletter.models import Delivery

        with session_scope() as s:
            rows = s.execute(
                select(Delivery.state).where(
                    Delivery.send_id == send_id, Delivery.subject_test.is_(True)
                )
            ).all()
        return bool(rows) and all(r[0] == "sent" for r in rows)

    _wait(sent_in_test)
    page = client.get(f"/console/sends/{send_id}").text
    assert "本周四份重点文件" in page and "真人点击" in page and "现在判定" in page
    r = client.post(f"/console/subject-tests/{send_id}/decide", data={"csrf": csrf})
    assert "无显著差异" in _flash(client, r)

    def finished() -> bool:
        with session_scope() as s:
            send = s.get(Send, send_id)
            return send is not None and send.state == "finished"

    from newsletter.web.console.services.sends import _runners

    if not _wait(finished, 20, fail=False):
        runner = _runners.get(send_id)
        if runner is not None:
            runner.join(60)
        if not finished():
            drive_inline(send_id)  # the first run had given up waiting: the rest goes now
    with session_scope() as s:
        send = s.get(Send, send_id)
        assert send is not None and send.test_winner == 0 and send.state == "finished"
    page = client.get(f"/console/sends/{send_id}").text
    assert "判定结果" in page and "现在判定" not in page and 'id="subject-form"' not in page


def test_a_list_exports_as_excel_with_headers_in_the_console_language(
    client: TestClient, console_settings: Settings
) -> None:
    import io

    from openpyxl import load_workbook

    with session_scope() as s:
        ml = MailingList(name="周报订阅")
        s.add(ml)
        s.flush()
        sub = Subscriber(email="a@example.org", name="=HYPERLINK(1)")
        s.add(sub)
        s.flush()
        s.add(Subscription(subscriber_id=sub.id, list_id=ml.id, status="active"))
        list_id = ml.id
    login(client, "ops")
    assert f"/console/lists/{list_id}/export.xlsx" in client.get("/console/subscribers").text
    r = client.get(f"/console/lists/{list_id}/export.xlsx")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxml")
    rows = list(load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True))  # type: ignore[union-attr]
    assert rows[0][:3] == ("邮箱", "姓名", "版本")
    assert rows[1][0] == "a@example.org" and not str(rows[1][1]).startswith("=")  # never a formula
    client.cookies.set("nl_lang", "en")
    en = load_workbook(io.BytesIO(client.get(f"/console/lists/{list_id}/export.xlsx").content))
    assert next(en.active.iter_rows(values_only=True))[:2] == ("email", "name")  # type: ignore[union-attr]
    assert _actions()[-1] == "subscribers.export"
    assert client.get("/console/lists/999999/export.xlsx").status_code == 404
    m, _ = client_as("marketing")
    assert m.get(f"/console/lists/{list_id}/export.xlsx").status_code == 403
