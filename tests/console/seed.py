"""Test data made through the real services: a list with subscribers, an approved issue,
a scheduled send.  Used by the console tests that need pages with content."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import select

from newsletter.audience.importer import import_file
from newsletter.core.db import session_scope
from newsletter.models.console import User
from newsletter.web.console import services as svc
from newsletter.web.console.auth import Principal

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def principal(role: str) -> Principal:
    with session_scope() as s:
        u = s.scalar(select(User).where(User.username == role))
        assert u is not None
        return Principal(u.id, u.username, u.display_name, u.role, "session")


def seed(tmp: Path, *, send: bool = True) -> dict[str, Any]:
    """examples/subscribers.csv into 周报订阅, issue #47 approved, one send scheduled."""
    import_file(EXAMPLES / "subscribers.csv", "周报订阅", report_path=tmp / "console-report.csv")
    src = (EXAMPLES / "issue-sample.md").read_bytes()
    images = [(p.name, p.read_bytes()) for p in sorted((EXAMPLES / "images").glob("*.png"))]
    issue = svc.upload_issue(principal("ops"), "issue-sample.md", src, images)
    svc.approve_issue(principal("editor"), issue["id"])
    out: dict[str, Any] = {"issue": issue, "lists": svc.lists()}
    if send:
        list_id = next(x["id"] for x in out["lists"] if x["name"] == "周报订阅")
        out["send"] = svc.create_send(
            principal("ops"),
            issue["id"],
            list_id,
            schedule=True,
            at=dt.datetime(2099, 11, 30, 9, tzinfo=dt.UTC),
        )
    return out
