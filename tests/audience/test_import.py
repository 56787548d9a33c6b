"""Subscriber import: encodings, headers, bad rows, idempotence, suppression."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.audience.importer import import_file
from newsletter.audience.service import is_suppressed, suppress, unsubscribe
from newsletter.core.db import session_scope
from newsletter.core.errors import ImportFileError
from newsletter.models import AuditLog, Subscriber, Subscription


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


GOOD = "email,name,variant\nzhang@example.com,张伟,简体\nLI@Example.COM,李娜,繁體\n"


def _count(model) -> int:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_import_then_reimport_changes_nothing(any_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = _write(tmp_path / "a.csv", GOOD)
    first = import_file(f, "周报")
    assert (first.new, first.invalid, first.rows) == (2, 0, 2)
    again = import_file(f, "周报")
    assert (again.new, again.updated, again.unchanged) == (0, 0, 2)
    assert _count(Subscriber) == 2 and _count(Subscription) == 2
    with session_scope() as s:
        li = s.scalars(select(Subscriber).where(Subscriber.email == "li@example.com")).one()
    assert li.variant == "zh-Hant" and li.name == "李娜"


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "big5", "utf-8-sig"])
def test_encodings_and_chinese_headers(sqlite_settings, tmp_path: Path, encoding: str) -> None:  # type: ignore[no-untyped-def]
    text = "邮箱,姓名,城市\nwang@example.com,王芳,台北\nchen@example.org,陳國華,香港\n"
    if encoding == "big5":
        text = text.replace("邮箱", "電子郵件")
    f = _write(tmp_path / "c.csv", text, encoding)
    summary = import_file(f, "周报")
    assert summary.new == 2, summary.errors
    with session_scope() as s:
        chen = s.scalars(select(Subscriber).where(Subscriber.email == "chen@example.org")).one()
    assert chen.name == "陳國華" and chen.attributes == {"城市": "香港"}


def test_bad_rows_are_reported_with_row_numbers(sqlite_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = (
        "email,name\n"
        "ok@example.com,甲\n"
        "not-an-address,乙\n"
        "with space@example.com,丙\n"
        ",丁\n"
        "ok@example.com,甲\n"
        "extra@example.com,戊,多余\n"
        "cut@exam"
    )
    f = _write(tmp_path / "bad.csv", text)
    report = tmp_path / "report.csv"
    s = import_file(f, "周报", report_path=report)
    assert (s.new, s.invalid, s.duplicate) == (1, 5, 1)
    rows = list(csv.DictReader(report.open(encoding="utf-8-sig")))
    by_row = {int(r["row"]): r for r in rows}
    assert set(by_row) == {3, 4, 5, 6, 7, 8}
    assert by_row[3]["value"] == "not-an-address"  # the report names the value it refused
    assert "@" in by_row[3]["reason"] or "邮箱" in by_row[3]["reason"]
    assert "duplicate of row 2" in by_row[6]["reason"]
    assert "columns" in by_row[7]["reason"]


def test_file_without_email_column_or_empty_is_refused(sqlite_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ImportFileError, match="no email column"):
        import_file(_write(tmp_path / "x.csv", "name,city\n张三,北京\n"), "周报")
    with pytest.raises(ImportFileError, match="empty"):
        import_file(_write(tmp_path / "e.csv", ""), "周报")
    with pytest.raises(ImportFileError, match="encoding"):
        (tmp_path / "bin.csv").write_bytes(bytes(range(128, 256)) * 50)
        import_file(tmp_path / "bin.csv", "周报")
    assert _count(Subscriber) == 0


def test_suppressed_and_unsubscribed_are_not_resubscribed(any_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = _write(tmp_path / "a.csv", GOOD)
    import_file(f, "周报")
    with session_scope() as s:
        zhang = s.scalars(select(Subscriber).where(Subscriber.email == "zhang@example.com")).one()
        unsubscribe(s, zhang.id, None)
        suppress(s, "li@example.com", "hard_bounce")
        suppress(s, "bystander@example.com", "complaint")  # not in the file
    again = import_file(f, "周报")
    assert again.suppressed == 2 and again.new == 0
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(Subscription.status == "active")) == 1
    forced = import_file(f, "周报", resubscribe=True, actor="ops@example.org")
    assert forced.resubscribed == 2
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(Subscription.status == "active")) == 2
        actions = list(
            s.scalars(select(AuditLog.action).where(AuditLog.actor == "ops@example.org"))
        )
        lifted = dict(s.execute(select(AuditLog.target, AuditLog.detail).where(
            AuditLog.action == "subscribers.resubscribe")).all())  # fmt: skip
        # found by mutation testing: lifting the file's suppressions must leave everyone
        # else's alone, and the audit must say what was lifted
        assert is_suppressed(s, "bystander@example.com") is not None
    assert actions.count("subscribers.resubscribe") == 2
    assert lifted["li@example.com"]["previous"] == "hard_bounce"
    assert lifted["zhang@example.com"]["previous"] == "unsubscribe_all"  # left every list


def test_sample_subscriber_file_imports_with_its_broken_rows_reported(
    sqlite_settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sample = Path(__file__).resolve().parents[2] / "examples" / "subscribers.csv"
    summary = import_file(sample, "周报", report_path=tmp_path / "errors.csv")
    assert summary.new >= 40
    assert summary.invalid + summary.duplicate >= 3


def test_preference_column_sets_the_variant(any_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = (
        "邮箱,姓名,偏好,城市\n"
        "a@example.com,甲,繁體,香港\n"
        "b@example.com,乙,简体,上海\n"
        "c@example.com,丙,繁体字,台北\n"
    )
    summary = import_file(_write(tmp_path / "pref.csv", text), "周报")
    assert (summary.new, summary.invalid) == (3, 0)
    with session_scope() as s:
        got = {sb.email: (sb.variant, sb.attributes) for sb in s.scalars(select(Subscriber))}
    assert got == {
        "a@example.com": ("zh-Hant", {"城市": "香港"}),
        "b@example.com": ("zh-Hans", {"城市": "上海"}),
        "c@example.com": ("zh-Hant", {"城市": "台北"}),
    }


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_the_separator_is_read_from_the_file(sqlite_settings, tmp_path: Path, sep: str) -> None:  # type: ignore[no-untyped-def]
    """Excel in many locales saves ';'; exports from other tools use tab or '|'."""
    path = tmp_path / "subs.csv"
    rows = [["邮箱", "姓名"], ["a@example.com", "张三"], ['"b@example.com"', '"李, 四"']]
    path.write_text("\n".join(sep.join(r) for r in rows) + "\n", encoding="utf-8")
    summary = import_file(path, "周报订阅", report_path=tmp_path / "err.csv")
    assert summary.new == 2
    with session_scope() as s:
        names = dict(s.execute(select(Subscriber.email, Subscriber.name)).all())
    assert names == {"a@example.com": "张三", "b@example.com": "李, 四"}
