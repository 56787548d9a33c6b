"""The zh-Hant conversion table: a per-publication setting, overridable per issue."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from newsletter.core.db import session_scope
from newsletter.issues.store import create_issue, render_issue
from newsletter.models import Publication, Rendition

SOURCE = """---
title: 为了测试
number: {n}
{extra}---

## 一、政策

### 1. 关于着力优化循环的通知

为着力推进软件产业发展，网络安全为重点。
"""


def _web(issue_id: int) -> str:
    with session_scope() as s:
        r = s.scalars(
            select(Rendition).where(
                Rendition.issue_id == issue_id,
                Rendition.variant == "zh-Hant",
                Rendition.output == "web",
            )
        ).one()
        return r.body


def test_publication_table_then_issue_override(sqlite_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    md = tmp_path / "a.md"
    md.write_text(SOURCE.format(n=1, extra=""), encoding="utf-8")
    with session_scope() as s:
        issue, _ = create_issue(s, md)
        issue_id, pub_id = issue.id, issue.publication_id
        render_issue(s, issue_id, force=True)
    s2t = _web(issue_id)
    assert "爲着力推進軟件產業發展" in s2t and "優化循環" in s2t  # mainland vocabulary
    with session_scope() as s:
        pub = s.get(Publication, pub_id)
        assert pub is not None and pub.zh_hant_table == "s2t"
        pub.zh_hant_table = "s2tw"
    with session_scope() as s:
        assert render_issue(s, issue_id) != {"cached": True}  # the table is part of the key
    tw = _web(issue_id)
    assert "為著力推進軟件產業發展" in tw and "網絡安全" in tw  # Taiwan glyphs, no phrase table
    md2 = tmp_path / "b.md"
    md2.write_text(SOURCE.format(n=2, extra="zh_hant: s2hk\n"), encoding="utf-8")
    with session_scope() as s:
        issue2, _ = create_issue(s, md2)
        render_issue(s, issue2.id, force=True)
        second = issue2.id
    assert "為着力推進軟件產業發展" in _web(second)  # the issue's own choice wins
