"""What a file handed to the brief import really is, read from its first bytes.

A brief is a Word file (.docx), a web page or text.  Anything else — a PDF, an image,
a workbook, an old binary Office file, a program — is refused here with one catalogue
line that names what the file appears to be, before any parser sees it.  A ZIP is
checked against :mod:`newsletter.core.safety.safezip`'s limits before anything
unpacks it.
"""

from __future__ import annotations

import io
import zipfile

from newsletter.core.catalogue import coded
from newsletter.core.errors import IssueFormatError
from newsletter.core.safety.safezip import ZipRefused, check_zip

__all__ = ["KINDS", "check_not_brief", "check_word_zip", "damaged_word", "magic_kind", "not_brief"]

#: kind → (Chinese, English) as the refusal names it
KINDS: dict[str, tuple[str, str]] = {
    "pdf": ("PDF 文件", "a PDF file"),
    "png": ("图片（PNG）", "an image (PNG)"),
    "jpeg": ("图片（JPEG）", "an image (JPEG)"),
    "gif": ("图片（GIF）", "an image (GIF)"),
    "webp": ("图片（WebP）", "an image (WebP)"),
    "xlsx": ("Excel 表格 (.xlsx)", "an Excel workbook (.xlsx)"),
    "pptx": ("PowerPoint 演示文稿 (.pptx)", "a PowerPoint presentation (.pptx)"),
    "odf": ("OpenDocument 文件（.odt 等）", "an OpenDocument file (.odt or similar)"),
    "zip": ("压缩包 (ZIP)", "a ZIP archive"),
    "exe": ("可执行程序", "a program (executable)"),
    "binary": ("二进制文件", "a binary file"),
}

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
#: programs (Windows, Linux, macOS): named only when the file also holds NUL bytes
_PROGRAMS = (b"MZ", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
_OLE2 = b"\xd0\xcf\x11\xe0"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
#: (zh, en) of each way a Word package can be broken
_DAMAGE = {
    "incomplete": ("压缩包不完整", "the archive is incomplete"),
    "no_body": ("缺少正文 word/document.xml", "word/document.xml is missing"),
    "unparsable": ("内容无法解析", "its content cannot be parsed"),
}
#: (zh, en) of each limit a ZIP can exceed
_LIMITS = {
    "member": ("单个部件解压后超过 64 MB", "one part unpacks to more than 64 MB"),
    "total": ("解压后合计超过 200 MB", "it unpacks to more than 200 MB in all"),
    "ratio": ("压缩比超过 200 倍", "a part is compressed more than 200 times"),
    "members": ("部件超过 5000 个", "it holds more than 5,000 parts"),
}


def _where(name: str) -> dict[str, str | None]:
    return {"path": name or None}


def not_brief(kind: str, name: str = "") -> IssueFormatError:
    zh, en = KINDS[kind]
    zh = f" {zh}" if zh[0].isascii() else zh  # 这是 PDF 文件, 这是图片
    return coded(IssueFormatError, "import.not_brief", where=_where(name), kind_zh=zh, kind_en=en)


def damaged_word(why: str, name: str = "") -> IssueFormatError:
    zh, en = _DAMAGE[why]
    return coded(IssueFormatError, "import.bad_word", where=_where(name), what_zh=zh, what_en=en)


def check_word_zip(data: bytes, name: str = "") -> None:
    """Return when ``data`` is a Word package safe to open; raise one coded line otherwise."""
    try:
        members = [info.filename for info in check_zip(data)]
    except ZipRefused as refused:
        if refused.reason == "damaged":
            if name.lower().endswith((".docx", ".docm", ".dotx")) or b"word/" in data:
                raise damaged_word("incomplete", name) from None
            raise not_brief("zip", name) from None
        zh, en = _LIMITS[refused.reason]
        raise coded(
            IssueFormatError, "import.zip_too_large", where=_where(name), what_zh=zh, what_en=en
        ) from None
    if "word/document.xml" in members:
        return
    kind = _package_kind(data, members)
    if kind == "docx":
        raise damaged_word("no_body", name)
    raise not_brief(kind, name)


def _package_kind(data: bytes, members: list[str]) -> str:
    """``docx`` (a Word package without its body), ``xlsx``, ``pptx``, ``odf`` or ``zip``."""
    types = ""
    if "[Content_Types].xml" in members:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf, zf.open("[Content_Types].xml") as fh:
                types = fh.read(1024 * 1024).decode("utf-8", "replace")
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError):
            types = ""
    if "spreadsheetml" in types or "xl/workbook.xml" in members:
        return "xlsx"
    if "presentationml" in types or "ppt/presentation.xml" in members:
        return "pptx"
    if "wordprocessingml" in types or any(m.startswith("word/") for m in members):
        return "docx"
    if "mimetype" in members and any(m == "content.xml" for m in members):
        return "odf"
    return "zip"


def magic_kind(data: bytes) -> str | None:
    """What the first bytes say the data is: pdf, png, jpeg, gif or webp (else None)."""
    head = data[:64]
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    return None


def check_not_brief(data: bytes, name: str = "") -> None:
    """Refuse, from its bytes, a file that is not a brief at all (ZIPs are checked apart)."""
    head = data[:64]
    kind = magic_kind(head)
    if kind is not None:
        raise not_brief(kind, name)
    if head.startswith(_OLE2):
        raise coded(IssueFormatError, "import.old_word", where=_where(name))
    if not head.startswith(_UTF16_BOMS) and b"\x00" in data[:65536]:
        raise not_brief("exe" if head.startswith(_PROGRAMS) else "binary", name)
