"""The PostgreSQL import path: parallel chunks, direct COPY, races, interruption, escaping,
and the statement-level checks that replace subscription's foreign keys (migration 0006)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from newsletter.audience import apply, rows
from newsletter.audience.importer import import_file
from newsletter.audience.service import get_or_create_list, suppress
from newsletter.core.db import session_scope
from newsletter.models import MailingList, Subscriber, Subscription


def _file(path: Path, n: int, start: int = 0, extra: str = "") -> Path:
    with path.open("w", encoding="gb18030", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["邮箱", "姓名", "版本", "城市"])
        for i in range(start, start + n):
            w.writerow(
                [f"user{i}@example{i % 7}.com", f"用户{i}", "繁體" if i % 3 else "简体", "北京"]
            )
        if extra:
            fh.write(extra)
    return path


def _counts() -> tuple[int, int, int]:
    with session_scope() as s:
        subs = s.scalar(select(func.count()).select_from(Subscriber)) or 0
        members = s.scalar(select(func.count()).select_from(Subscription)) or 0
        distinct = s.scalar(select(func.count(func.distinct(Subscriber.email)))) or 0
    return subs, members, distinct


def test_parallel_chunks_new_known_and_suppressed(pg_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # 300 people already known (some unsubscribed later), 2 suppressed, 700 new; chunks of 64
    # so both workers and both paths (direct COPY, look-up) run many times.
    first = import_file(_file(tmp_path / "a.csv", 300), "周报", chunk_size=64)
    assert (first.new, first.invalid, first.duplicate) == (300, 0, 0)
    with session_scope() as s:
        suppress(s, "user5@example5.com", "hard_bounce")
        suppress(s, "user900@example4.com", "complaint")  # not yet a subscriber
    big = import_file(_file(tmp_path / "b.csv", 1000), "周报", chunk_size=64)
    assert big.new == 699 and big.suppressed == 2, big.as_dict()
    assert big.unchanged == 299 and big.updated == 0
    subs, members, distinct = _counts()
    assert subs == distinct == 999 and members == 999
    again = import_file(_file(tmp_path / "b.csv", 1000), "周报", chunk_size=64)
    assert (again.new, again.updated, again.unchanged, again.suppressed) == (0, 0, 998, 2)
    with session_scope() as s:
        li = s.scalars(select(Subscriber).where(Subscriber.email == "user700@example0.com")).one()
    assert li.name == "用户700" and li.variant == "zh-Hant" and li.attributes == {"城市": "北京"}


def test_a_concurrent_writer_is_caught_and_the_chunk_reapplied(
    pg_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # What the import believes it knows is taken before another writer adds an address:
    # the direct COPY then meets the unique index and the chunk is applied again.
    original = rows.Known.__init__

    def stale(self, db_url, limit=2_000_000):  # type: ignore[no-untyped-def]
        original(self, db_url, limit)
        with session_scope() as s:
            lst = get_or_create_list(s, "other")
            s.add(Subscriber(email="user3@example3.com", name="先来的", source="form"))
            s.flush()
            sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "user3@example3.com"))
            s.add(Subscription(subscriber_id=sid, list_id=lst.id, status="active"))

    monkeypatch.setattr(rows.Known, "__init__", stale)
    summary = import_file(_file(tmp_path / "a.csv", 50), "周报", chunk_size=20)
    assert summary.new == 49 and summary.updated == 1, summary.as_dict()
    subs, members, distinct = _counts()
    assert subs == distinct == 50 and members == 51


def test_an_interrupted_import_converges_when_run_again(
    pg_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    f = _file(tmp_path / "a.csv", 500)
    calls = {"n": 0}
    original = apply.Applier._copy_new

    def dies_on_third(self, s, chunk):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("operator pressed Ctrl-C")
        return original(self, s, chunk)

    monkeypatch.setattr(apply.Applier, "_copy_new", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        import_file(f, "周报", chunk_size=50, workers=1)
    subs, members, _ = _counts()
    assert subs == members and subs % 50 == 0 and subs < 500  # whole chunks only
    monkeypatch.setattr(apply.Applier, "_copy_new", original)
    again = import_file(f, "周报", chunk_size=50)
    assert again.new == 500 - subs and again.unchanged == subs
    assert _counts() == (500, 500, 500)


def test_values_needing_escapes_survive_copy(pg_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    odd = 'tab\there, back\\slash, "quoted"\nnew line'
    path = tmp_path / "odd.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "name", "备注"])
        w.writerow(["odd@example.com", odd, odd])
        w.writerow(["plain@example.com", "普通", "无"])
    # Once through the direct COPY (new), once through the look-up path (known).
    for expected_new in (2, 0):
        summary = import_file(path, "周报")
        assert summary.new == expected_new and summary.invalid == 0
    with session_scope() as s:
        row = s.scalars(select(Subscriber).where(Subscriber.email == "odd@example.com")).one()
    # The name is header-bound: its tab and line break became spaces (issue 14, F3);
    # attributes keep every byte.
    assert row.name == 'tab here, back\\slash, "quoted" new line'
    assert row.attributes == {"备注": odd}


def test_subscription_references_are_enforced_without_foreign_keys(pg_settings) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        fks = s.scalar(
            text(
                "SELECT count(*) FROM pg_constraint "
                "WHERE conrelid = 'subscription'::regclass AND contype = 'f'"
            )
        )
        assert fks == 0
        lst = get_or_create_list(s, "周报")
        sub = Subscriber(email="a@example.com")
        s.add(sub)
        s.flush()
        s.add(Subscription(subscriber_id=sub.id, list_id=lst.id, status="active"))
        list_id, sub_id = lst.id, sub.id
    with pytest.raises(IntegrityError, match="missing subscriber"), session_scope() as s:
        s.add(Subscription(subscriber_id=sub_id + 1000, list_id=list_id, status="active"))
    with pytest.raises(IntegrityError, match="missing list"), session_scope() as s:
        s.add(Subscription(subscriber_id=sub_id, list_id=list_id + 1000, status="active"))
    with pytest.raises(IntegrityError, match="missing"), session_scope() as s:
        s.execute(text("UPDATE subscription SET subscriber_id = subscriber_id + 1000"))
    # Deleting a subscriber, or a list, takes its subscriptions with it.
    with session_scope() as s:
        other = get_or_create_list(s, "月报")
        s.add(Subscription(subscriber_id=sub_id, list_id=other.id, status="active"))
    with session_scope() as s:
        s.execute(text("DELETE FROM mailing_list WHERE name = '月报'"))
        assert s.scalar(select(func.count()).select_from(Subscription)) == 1
        s.execute(text("DELETE FROM subscriber WHERE id = :i"), {"i": sub_id})
        assert s.scalar(select(func.count()).select_from(Subscription)) == 0
        assert s.scalar(select(func.count()).select_from(MailingList)) == 1
