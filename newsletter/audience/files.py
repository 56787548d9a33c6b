"""Reading subscriber files: encoding detection, CSV and XLSX rows, header mapping.

Rows are streamed: a file of any size is read with constant memory.  The
encoding is chosen from the first 256 KB: UTF-8 (with or without BOM) first,
then GB18030 (a superset of GBK) and Big5, with charset-normalizer breaking
ties.  A file that decodes in none of them is refused before any row is read.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImportFileError

__all__ = ["HEADER_ALIASES", "SourceFile", "detect_encoding", "open_rows"]

#: Header names recognised for each field (compared case-insensitively, stripped).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "e-mail",
        "mail",
        "邮箱",
        "电子邮箱",
        "电子邮件",
        "邮件地址",
        "郵箱",
        "電子郵件",
        "電子郵箱",
        "邮箱地址",
    ),
    "name": ("name", "姓名", "名字", "称呼", "名稱", "稱呼", "full name"),
    "variant": (
        "variant",
        "版本",
        "语言",
        "語言",
        "字体",
        "字體",
        "偏好",
        "字体偏好",
        "字體偏好",
        "简繁",
        "簡繁",
        "简繁体",
        "簡繁體",
        "preference",
        "preferred variant",
        "script",
    ),
}

_SNIFF = 256 * 1024


def detect_encoding(sample: bytes) -> str:
    """Return a Python codec name for ``sample`` or raise ImportFileError."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    candidates = ["utf-8", "gb18030", "big5"]
    ok = []
    for enc in candidates:
        try:
            # A cut at the end of the sample may split a character: ignore the tail.
            codecs.getincrementaldecoder(enc)().decode(sample, final=False)
            ok.append(enc)
        except UnicodeDecodeError:
            continue
    if not ok:
        raise ImportFileError(
            "file encoding not recognised: not UTF-8, GB18030/GBK or Big5 / 无法识别文件编码"
        )
    if ok[0] == "utf-8" or len(ok) == 1:
        return ok[0]
    # Both GB18030 and Big5 decode: let charset-normalizer decide between them.
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=["gb18030", "big5"]).best()
    if best is not None and best.encoding in ("big5", "big5hkscs"):
        return "big5"
    return "gb18030"


@dataclass(slots=True)
class SourceFile:
    path: Path
    encoding: str | None  # None for XLSX
    header: list[str]
    columns: dict[str, int]  # field -> column index

    @property
    def extras(self) -> list[tuple[str, int]]:
        """Columns that are not mapped to a field: kept as free attributes."""
        used = set(self.columns.values())
        return [(h, i) for i, h in enumerate(self.header) if i not in used and h]


def _map_header(header: list[str], path: Path) -> dict[str, int]:
    normal = [h.strip().lstrip("\ufeff").lower() for h in header]
    columns: dict[str, int] = {}
    for field, aliases in HEADER_ALIASES.items():
        for i, h in enumerate(normal):
            if h in aliases:
                columns[field] = i
                break
    if "email" not in columns:
        raise ImportFileError(
            f"{path}: no email column in header {header!r}; expected one of "
            f"{', '.join(HEADER_ALIASES['email'][:6])} / 未找到邮箱列"
        )
    return columns


def open_rows(path: Path) -> tuple[SourceFile, Iterator[tuple[int, list[str]]]]:
    """Open a CSV or XLSX file. Returns its description and an iterator of (row number, cells).

    Row numbers are 1-based file rows, the header being row 1, as a spreadsheet shows them.
    """
    if not path.exists():
        raise ImportFileError(f"{path}: file not found / 文件不存在")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _open_xlsx(path)
    with path.open("rb") as fh:
        sample = fh.read(_SNIFF)
    if not sample.strip():
        raise ImportFileError(f"{path}: file is empty / 文件为空")
    encoding = detect_encoding(sample)
    raw = path.open("rb")
    text = io.TextIOWrapper(raw, encoding=encoding, newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raw.close()
        raise ImportFileError(f"{path}: file is empty / 文件为空") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raw.close()
        raise ImportFileError(f"{path}: header row unreadable: {exc}") from exc
    try:
        columns = _map_header(header, path)
    except ImportFileError:
        raw.close()
        raise
    src = SourceFile(path, encoding, header, columns)

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for cells in reader:
                yield reader.line_num, cells
        finally:
            raw.close()

    return src, rows()


def _open_xlsx(path: Path) -> tuple[SourceFile, Iterator[tuple[int, list[str]]]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise ImportFileError(f"{path}: not a readable XLSX file: {exc}") from exc
    ws = wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    try:
        header = ["" if c is None else str(c) for c in next(it)]
    except StopIteration:
        wb.close()
        raise ImportFileError(f"{path}: file is empty / 文件为空") from None
    columns = _map_header(header, path)
    src = SourceFile(path, None, header, columns)

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for n, cells in enumerate(it, start=2):
                yield n, ["" if c is None else str(c) for c in cells]
        finally:
            wb.close()

    return src, rows()
