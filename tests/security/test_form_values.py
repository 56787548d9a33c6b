"""A value PostgreSQL cannot store, typed into a console form, comes back to that form as
one line (Chinese first), not as a JSON body; the JSON API keeps its 422."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from newsletter.core.db import session_scope
from newsletter.models import User


def test_a_nul_in_a_form_returns_to_the_form_with_one_line(as_role: Any) -> None:
    ops = as_role("ops")
    r = ops.client.post(
        "/console/account/profile",
        data={"csrf": ops.csrf, "display_name": "运营\x00小王", "email": ""},
        headers={"Referer": "https://testserver/console/account"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/account"
    page = ops.client.get(r.headers["location"]).text
    assert "输入的值无法保存" in page and "Traceback" not in page
    with session_scope() as s:
        assert s.scalar(select(User.display_name).where(User.username == "ops")) == "运营小王"
    # a Referer elsewhere never sends the person off the console
    r = ops.client.post(
        "/console/account/profile",
        data={"csrf": ops.csrf, "display_name": "x\x00", "email": ""},
        headers={"Referer": "https://evil.example//evil.example/console/x"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/"
