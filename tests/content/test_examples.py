"""The example files other tests and the demo rely on keep their documented shape."""

from __future__ import annotations

import csv
import io
import struct

from .conftest import EXAMPLES


def _rows(name: str, encoding: str) -> list[list[str]]:
    text = (EXAMPLES / name).read_bytes().decode(encoding)
    return list(csv.reader(io.StringIO(text)))


def test_subscribers_csv_has_its_documented_defects() -> None:
    header, *rows = _rows("subscribers.csv", "utf-8")
    assert header == ["email", "name", "variant", "city"]
    assert 45 <= len(rows) <= 55
    assert {r[2] for r in rows if len(r) >= 3} == {"zh-Hans", "zh-Hant"}
    emails = [r[0] for r in rows]
    assert sum(bool(e) and "@" not in e for e in emails) == 1
    assert sum(" " in e for e in emails) == 1
    assert emails.count("") == 1
    assert sum(len(r) != 4 for r in rows) == 1
    assert len({tuple(r) for r in rows}) == len(rows) - 1
    domains = {e.rsplit("@", 1)[1].lower() for e in emails if "@" in e}
    assert all(
        d.endswith((".example", "example.com", "example.org", "example.net")) for d in domains
    )


def test_gbk_subscribers_csv() -> None:
    raw = (EXAMPLES / "subscribers-gbk.csv").read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        raise AssertionError("subscribers-gbk.csv must not be valid UTF-8")
    header, *rows = _rows("subscribers-gbk.csv", "gbk")
    assert header == ["邮箱", "姓名", "版本"]
    assert len(rows) == 10
    assert {r[2] for r in rows} <= {"简体", "繁体"}


def test_example_images_are_small_pngs() -> None:
    for name, size in (("chart-1.png", (480, 280)), ("cover.png", (900, 383))):
        data = (EXAMPLES / "images" / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert struct.unpack(">II", data[16:24]) == size
        assert len(data) < 20_000


def test_plain_brief_length() -> None:
    text = (EXAMPLES / "brief-plain.txt").read_text(encoding="utf-8")
    assert 4_000 <= len(text) <= 6_000
