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

from newsletter.core.errors import ImportFileError

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


def _delimiter(sample: bytes, encoding: str) -> str:
    """The separator of this file's header row: ``,``, ``;``, tab or ``|``, whichever splits
    it into the most columns (outside quotes); ``,`` when none does."""
    head = sample.decode(encoding, errors="replace").lstrip("\ufeff").splitlines()[:1]
    if not head:
        return ","
    line, counts, quoted = head[0], dict.fromkeys(",;\t|", 0), False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda c: (counts[c], c == ","))
    return best if counts[best] else ","


def open_rows(path: Path) -> tuple[SourceFile, Iterator[tuple[int, list[str]]]]:
    """Open a CSV or XLSX file. Returns its description and an iterator of (row number, cells).

    Row numbers are 1-based file rows, the header being row 1, as a spreadsheet shows them.
    """
    if not path.exists():
        raise ImportFileError(f"{path}: file not found / 文件不存在")
    if not path.is_file():
        raise ImportFileError(f"{path}: is a directory, not a file / 是目录，不是文件")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _open_xlsx(path)
    _refuse_nul(path)
    with path.open("rb") as fh:
        sample = fh.read(_SNIFF)
    if not sample.strip():
        raise ImportFileError(f"{path}: file is empty / 文件为空")
    encoding = detect_encoding(sample)
    delimiter = _delimiter(sample, encoding)
    raw = path.open("rb")
    text = io.TextIOWrapper(raw, encoding=encoding, newline="")
    reader = csv.reader(text, delimiter=delimiter)
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
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ImportFileError(
                f"{path}:{reader.line_num}: unreadable: {exc} / 无法读取"
            ) from exc
        finally:
            raw.close()

    return src, rows()


#: Hard limits on a spreadsheet, checked before and while it streams.
XLSX_MAX_UNPACKED = 200 * 1024 * 1024  # all parts of the ZIP, as declared (zipfile enforces it)
XLSX_MAX_SHARED_STRINGS = 16 * 1024 * 1024  # loaded whole by openpyxl: the memory bound
XLSX_MAX_CELLS = 50_000_000
XLSX_MAX_COLUMNS = 256
XLSX_MAX_ROWS = 1_048_576
XLSX_MAX_SECONDS = 600.0


def _check_zip(path: Path) -> None:
    from newsletter.core.safety.safezip import ZipLimits, ZipRefused, check_zip

    try:
        infos = check_zip(path, ZipLimits(total=XLSX_MAX_UNPACKED))
    except ZipRefused as exc:
        if exc.name.lower().endswith("sharedstrings.xml"):
            raise ImportFileError(
                f"{path}: its shared-strings table is too large ({exc}) / XLSX 共享字符串表过大"
            ) from None
        if exc.reason == "damaged":
            raise ImportFileError(
                f"{path}: not a readable XLSX file: {exc} / 不是有效的 XLSX 文件"
            ) from None
        raise ImportFileError(
            f"{path}: unpacks too large or compressed suspiciously ({exc}) / XLSX 解压后过大"
        ) from None
    for i in infos:
        if (
            i.filename.lower().endswith("sharedstrings.xml")
            and i.file_size > XLSX_MAX_SHARED_STRINGS
        ):
            raise ImportFileError(
                f"{path}: its shared-strings table unpacks to {i.file_size // 1048576} MB, more "
                f"than {XLSX_MAX_SHARED_STRINGS // 1048576} MB / XLSX 共享字符串表过大"
            )


def _declared_size(ws: object) -> tuple[int, int]:
    """(rows, columns) the sheet's <dimension> declares (0, 0) when absent or unreadable."""
    from openpyxl.utils.cell import range_boundaries

    try:
        ref = ws.calculate_dimension()  # type: ignore[attr-defined]
        _c0, _r0, c1, r1 = range_boundaries(ref)
        return int(r1 or 0), int(c1 or 0)
    except Exception:
        return 0, 0


def _refuse_nul(path: Path) -> None:
    """A NUL byte makes a CSV unreadable halfway; refuse the file before any row is applied."""
    line = 1
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            at = block.find(b"\x00")
            if at != -1:
                line += block.count(b"\n", 0, at)
                raise ImportFileError(
                    f"{path}:{line}: contains a NUL byte; not a text CSV / 第 {line} 行含 NUL 字节"
                )
            line += block.count(b"\n")


def _open_xlsx(path: Path) -> tuple[SourceFile, Iterator[tuple[int, list[str]]]]:
    import time

    from openpyxl import load_workbook

    _check_zip(path)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise ImportFileError(f"{path}: not a readable XLSX file: {exc}") from exc
    ws = wb.worksheets[0]
    rows_declared, cols_declared = _declared_size(ws)
    if rows_declared * cols_declared > XLSX_MAX_CELLS or cols_declared > XLSX_MAX_COLUMNS * 64:
        wb.close()
        raise ImportFileError(
            f"{path}: the sheet declares {rows_declared:,} rows × {cols_declared:,} columns, "
            f"more than {XLSX_MAX_CELLS:,} cells / 表格声明的范围过大"
        )
    # Never pad rows to the declared size: read only the cells that are really there.
    ws.reset_dimensions()  # type: ignore[union-attr]
    it = ws.iter_rows(values_only=True)
    started = time.monotonic()
    try:
        first = next(it)
    except StopIteration:
        wb.close()
        raise ImportFileError(f"{path}: file is empty / 文件为空") from None
    header = ["" if c is None else str(c) for c in first[:XLSX_MAX_COLUMNS]]
    columns = _map_header(header, path)
    src = SourceFile(path, None, header, columns)

    def rows() -> Iterator[tuple[int, list[str]]]:
        cells_seen = len(first)
        try:
            for n, cells in enumerate(it, start=2):
                cells_seen += len(cells)
                if n > XLSX_MAX_ROWS or cells_seen > XLSX_MAX_CELLS:
                    raise ImportFileError(
                        f"{path}: more than {XLSX_MAX_CELLS:,} cells or {XLSX_MAX_ROWS:,} rows "
                        f"(at row {n}) / 表格过大"
                    )
                if n % 1024 == 0 and time.monotonic() - started > XLSX_MAX_SECONDS:
                    raise ImportFileError(
                        f"{path}: reading took longer than {XLSX_MAX_SECONDS:.0f} s (at row {n}) "
                        "/ 读取超时"
                    )
                if len(cells) > XLSX_MAX_COLUMNS:
                    cells = cells[
                        :XLSX_MAX_COLUMNS
                    ]  # cells past the limit are never columns we map
                yield n, ["" if c is None else str(c) for c in cells]
        finally:
            wb.close()

    return src, rows()
