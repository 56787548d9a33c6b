"""A ZIP package checked before anything unpacks it (Word briefs, XLSX subscriber files).

Only the central directory is read: the sizes it declares are the sizes :mod:`zipfile`
will hold a member to when it is read, so refusing on them bounds what any later
reader (python-docx, openpyxl) can inflate.  A refusal says which limit was hit; the
caller turns it into its own message.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ZipLimits", "ZipRefused", "check_zip"]

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ZipLimits:
    member: int = 64 * MB  # one member, uncompressed
    total: int = 200 * MB  # every member together, uncompressed
    ratio: int = 200  # uncompressed / compressed, for members larger than ratio_from
    ratio_from: int = 1 * MB
    members: int = 5_000


class ZipRefused(ValueError):
    """The archive is unreadable (``reason == "damaged"``) or over a limit.

    ``reason`` is one of ``damaged``, ``member``, ``total``, ``ratio``, ``members``;
    ``name`` is the member concerned (inside the archive, never a path on disk).
    """

    def __init__(self, reason: str, detail: str, name: str = "") -> None:
        self.reason = reason
        self.name = name
        super().__init__(detail)


def check_zip(source: bytes | Path, limits: ZipLimits | None = None) -> list[zipfile.ZipInfo]:
    """The members of a ZIP whose central directory stays within ``limits``.

    Raises :class:`ZipRefused` for a damaged archive or one over a limit.
    """
    lim = limits or ZipLimits()
    try:
        handle = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
        with handle as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ZipRefused("damaged", type(exc).__name__) from None
    if len(infos) > lim.members:
        raise ZipRefused("members", f"{len(infos)} members, more than {lim.members}")
    total = 0
    for info in infos:
        size = info.file_size
        if size > lim.member:
            raise ZipRefused(
                "member",
                f"{info.filename!r} unpacks to {size // MB} MB, more than {lim.member // MB} MB",
                info.filename,
            )
        packed = max(info.compress_size, 1)
        if size > lim.ratio_from and size > packed * lim.ratio:
            raise ZipRefused(
                "ratio",
                f"{info.filename!r} is compressed {size // packed} times, more than {lim.ratio}",
                info.filename,
            )
        total += size
        if total > lim.total:
            raise ZipRefused("total", f"unpacks to more than {lim.total // MB} MB in all")
    return infos
