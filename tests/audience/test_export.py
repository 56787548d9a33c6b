from __future__ import annotations

import csv
import io

from typer.testing import CliRunner

from newsletter.audience.export import iter_csv
from newsletter.cli.main import app
from tests.factories import seed


def test_export_is_excel_friendly_and_complete(any_db) -> None:  # type: ignore[no-untyped-def]
    ids = seed(7)
    data = b"".join(iter_csv(ids["list"]))
    assert data.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(rows) == 7 and rows[0]["name"] == "读者0"
    segment = b"".join(iter_csv(ids["list"], {"variant": "zh-Hant"}))
    assert len(list(csv.DictReader(io.StringIO(segment.decode("utf-8-sig"))))) == 3


def test_export_command_writes_file(sqlite_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    seed(3)
    out = tmp_path / "out.csv"
    r = CliRunner().invoke(app, ["subscribers", "export", "--list", "周报订阅", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes().startswith(b"\xef\xbb\xbf") and "reader2@example.com" in out.read_text(
        "utf-8-sig"
    )
