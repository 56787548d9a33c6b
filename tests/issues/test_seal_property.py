"""The seal: any change to any input of a sealed version changes it (property tests), and
migration 0016 goes up and down on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

from newsletter.core.db import dispose, engine, upgrade
from newsletter.issues.seal import KINDS, seal_of
from tests.conftest import PG_ADMIN

Files = dict[tuple[str, str], bytes]

sources = st.text(max_size=300)
versions = st.text(alphabet="0123456789.:s2thkw", min_size=1, max_size=12)
refs = st.text(alphabet="abc/._-图表", min_size=1, max_size=16)
files = st.dictionaries(st.tuples(st.sampled_from(KINDS), refs), st.binary(max_size=200),
                        max_size=4)  # fmt: skip


def _other_char(data: st.DataObject, c: str) -> str:
    return data.draw(st.characters(codec="utf-8").filter(lambda x: x != c), label="replacement")


def _change_text(data: st.DataObject, text: str) -> str:
    """``text`` with one character replaced, inserted or removed."""
    how = data.draw(st.sampled_from(["replace", "insert", "delete"]) if text else st.just("insert"))
    i = data.draw(st.integers(0, max(len(text) - 1, 0)), label="at")
    if how == "insert":
        return text[:i] + data.draw(st.characters(codec="utf-8")) + text[i:]
    if how == "delete":
        return text[:i] + text[i + 1 :]
    return text[:i] + _other_char(data, text[i]) + text[i + 1 :]


def _change_bytes(data: st.DataObject, blob: bytes) -> bytes:
    """``blob`` with one byte flipped (any non-zero XOR), inserted or removed."""
    how = data.draw(st.sampled_from(["flip", "insert", "delete"]) if blob else st.just("insert"))
    i = data.draw(st.integers(0, max(len(blob) - 1, 0)), label="at")
    if how == "insert":
        return blob[:i] + bytes([data.draw(st.integers(0, 255))]) + blob[i:]
    if how == "delete":
        return blob[:i] + blob[i + 1 :]
    return blob[:i] + bytes([blob[i] ^ data.draw(st.integers(1, 255))]) + blob[i + 1 :]


@settings(max_examples=400, deadline=None)
@given(source=sources, version=versions, assets=files, data=st.data())
def test_any_change_to_any_input_changes_the_seal(
    source: str, version: str, assets: Files, data: st.DataObject
) -> None:
    before = seal_of(source, version, assets)
    assert before == seal_of(source, version, dict(reversed(list(assets.items()))))  # order-free
    targets = ["source", "version", "add asset"] + [("bytes", k) for k in assets] + [
        ("path", k) for k in assets] + [("drop", k) for k in assets]  # fmt: skip
    target = data.draw(st.sampled_from(targets), label="what changes")
    src, ver, new = source, version, dict(assets)
    if target == "source":
        src = _change_text(data, source)
    elif target == "version":
        ver = _change_text(data, version)
    elif target == "add asset":
        key = data.draw(st.tuples(st.sampled_from(KINDS), refs).filter(lambda k: k not in assets))
        new[key] = data.draw(st.binary(max_size=50))
    else:
        what, key = target
        if what == "bytes":
            new[key] = _change_bytes(data, assets[key])
        elif what == "drop":
            del new[key]
        else:  # the same bytes under another path, or as another kind of asset
            kind, ref = key
            other = next(k for k in KINDS if k != kind)
            free = [k for k in [(other, ref)] + [(kind, ref + "x" * n) for n in range(1, 7)]
                    if k not in assets]  # fmt: skip
            moved = data.draw(st.sampled_from(free), label="moved to")
            new[moved] = new.pop(key)
    assert (src, ver, new) != (source, version, assets)
    assert seal_of(src, ver, new) != before


def test_the_same_bytes_under_two_paths_are_two_assets() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 20
    one = seal_of("s", "1", {("image", "a.png"): png})
    assert one != seal_of("s", "1", {("image", "a.png"): png, ("image", "b.png"): png})
    assert one != seal_of("s", "1", {("cover", "a.png"): png})
    # length-prefixed fields: moving a byte from one field to the next is a change
    assert seal_of("ab", "1", {}) != seal_of("a", "b1", {})


# -- migration 0016 ----------------------------------------------------------------------------


def _up_and_down(url: str) -> None:
    upgrade(url, "0015")
    assert "issue_seal" not in inspect(engine(url)).get_table_names()
    upgrade(url)
    insp = inspect(engine(url))
    assert "issue_seal" in insp.get_table_names()
    assert "sealed_version" in {c["name"] for c in insp.get_columns("issue")}
    assert {"uq_issue_seal_version"} <= {
        u["name"] for u in insp.get_unique_constraints("issue_seal")
    }
    from alembic import command

    from newsletter.core.db import alembic_config

    command.downgrade(alembic_config(url), "0015")
    dispose()
    insp = inspect(engine(url))
    assert "issue_seal" not in insp.get_table_names()
    assert "sealed_version" not in {c["name"] for c in insp.get_columns("issue")}
    upgrade(url)
    dispose()


def test_migration_0016_up_and_down_sqlite(tmp_path: Path) -> None:
    _up_and_down(f"sqlite:///{tmp_path / 'm.db'}")


def test_migration_0016_up_and_down_postgresql() -> None:
    name = f"nltest_m_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        _up_and_down(f"{base}/{name}")
    finally:
        dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
