"""Issue 27: a hostile or wrong file handed to the brief import gets one clear line.

Each file is built here: a real zip bomb, a Word file cut short, a Word package
without its body or with broken XML, a PDF, images, a workbook, a presentation,
an old .doc, a program.  Both the Python entry point and the command must refuse
it with one catalogue line, Chinese first, no traceback, no server path, and
nothing written.
"""

from __future__ import annotations

import functools
import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import docx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.content.documents import read_document
from newsletter.content.textimport import import_issue_text
from newsletter.core.errors import IssueFormatError
from newsletter.core.safety.safezip import ZipLimits, ZipRefused, check_zip

from . import wordfiles

_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]{3}")


@functools.cache
def _small_docx() -> bytes:
    d = docx.Document()
    d.add_heading("国资周报 第3期", 0)
    d.add_paragraph("一、政策")
    d.add_paragraph("正文" * 50)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, body in members.items():
            z.writestr(name, body)
    return buf.getvalue()


def _rewrite(data: bytes, name: str, body: bytes | None) -> bytes:
    """``data`` (a ZIP) with member ``name`` replaced by ``body``, or dropped when None."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    if body is None:
        del members[name]
    else:
        members[name] = body
    return _zip(members)


def _zip_bomb() -> bytes:
    """A Word-looking package whose body inflates to 100 MB from about 100 KB."""
    return _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"\0" * (100 << 20)})


_XLSX_TYPES = (
    b'<Types><Override PartName="/xl/workbook.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>'
)
_PPTX_TYPES = (
    b'<Types><Override PartName="/ppt/presentation.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"/></Types>'
)

#: name → (file name, the bytes, words the Chinese half must hold)
CASES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "zip bomb": ("bomb.docx", _zip_bomb, "解压后过大"),
    "zip bomb under the size cap": (
        "ratio.docx",
        lambda: _zip({"word/document.xml": b"<w:t>" + b"A" * (20 << 20)}),
        "压缩比",
    ),
    "truncated docx": ("cut.docx", lambda: _small_docx()[:-300], "Word 文件已损坏"),
    "docx without body": (
        "nobody.docx",
        lambda: _rewrite(_small_docx(), "word/document.xml", None),
        "Word 文件已损坏",
    ),
    "docx with broken xml": (
        "badxml.docx",
        lambda: _rewrite(_small_docx(), "word/document.xml", b"<w:document><w:body>"),
        "Word 文件已损坏",
    ),
    "pdf": ("brief.pdf", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "PDF"),
    "png": ("brief.png", wordfiles.png, "图片"),
    "jpeg": ("brief.jpg", lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 64, "图片"),
    "gif": ("brief.gif", lambda: b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 20, "图片"),
    "webp": ("brief.webp", lambda: b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 20, "图片"),
    "xlsx": ("brief.xlsx", lambda: _zip({"[Content_Types].xml": _XLSX_TYPES}), "Excel"),
    "pptx": ("brief.pptx", lambda: _zip({"[Content_Types].xml": _PPTX_TYPES}), "PowerPoint"),
    "old doc": ("brief.doc", lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, ".doc"),
    "program": ("brief.txt", lambda: b"MZ\x90\x00\x03\x00\x00\x00" + b"\xff" * 64, "程序"),
    "binary": ("brief.txt", lambda: b"\x01\x02\x03hello\x00\x00world" * 20, "二进制"),
    "binary, no nul": ("data.bin", lambda: bytes(range(1, 256)) * 8, "二进制"),
}


def _check_line(line: str, needle: str) -> None:
    assert "\n" not in line and "Traceback" not in line
    assert "/tmp" not in line and not re.search(r"(^|\s)/\w", line), line
    zh_half, en_half = line.split(" / ", 1)
    assert _CJK.search(zh_half) and not _CJK.search(en_half), line  # Chinese first
    assert _LATIN.search(en_half), line
    assert needle in zh_half, line


@pytest.mark.parametrize("case", sorted(CASES))
def test_read_document_refuses_with_one_coded_line(case: str) -> None:
    name, make, needle = CASES[case]
    with pytest.raises(IssueFormatError) as refused:
        read_document(make(), name=name)
    assert getattr(refused.value, "code", "").startswith("import.")
    _check_line(str(refused.value), needle)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_command_refuses_with_one_line_and_writes_nothing(tmp_path: Path, case: str) -> None:
    name, make, needle = CASES[case]
    src = tmp_path / name
    src.write_bytes(make())
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter.cli.main", "issue", "import", str(src)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    assert str(tmp_path) not in proc.stderr + proc.stdout
    _check_line(lines[0], needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .md, no images/, no tmp


def test_the_python_entry_point_writes_nothing_either(tmp_path: Path) -> None:
    src = tmp_path / "bomb.docx"
    src.write_bytes(_zip_bomb())
    with pytest.raises(IssueFormatError):
        import_issue_text(src)
    assert [p.name for p in tmp_path.iterdir()] == ["bomb.docx"]


def test_a_real_word_brief_still_imports() -> None:
    text, source, _ = read_document(wordfiles.analyst_brief(), name="brief.docx")
    assert source is not None and text.strip()
    assert read_document(_small_docx(), name="x.docx")[0].startswith("国资周报")


def test_the_zip_guard_checks_each_limit() -> None:
    small = ZipLimits(member=1000, total=1500, ratio=10, ratio_from=100, members=3)
    with pytest.raises(ZipRefused) as member:
        check_zip(_zip({"a": b"x" * 1001}, zipfile.ZIP_STORED), small)
    assert member.value.reason == "member"
    with pytest.raises(ZipRefused) as total:
        check_zip(_zip({"a": b"x" * 800, "b": b"y" * 800}, zipfile.ZIP_STORED), small)
    assert total.value.reason == "total"
    with pytest.raises(ZipRefused) as ratio:
        check_zip(_zip({"a": b"x" * 900}), small)
    assert ratio.value.reason == "ratio"
    with pytest.raises(ZipRefused) as count:
        check_zip(_zip({str(n): b"" for n in range(4)}), small)
    assert count.value.reason == "members"
    with pytest.raises(ZipRefused) as damaged:
        check_zip(_small_docx()[:-100])
    assert damaged.value.reason == "damaged"
    assert len(check_zip(_small_docx())) > 3  # a real Word file passes the default limits


def test_undecodable_text_is_told_to_save_as_utf8_but_a_binary_is_not() -> None:
    text = "國資周報".encode("big5") + b"\x80\xff\x80\xff" * 4 + b"\n"
    with pytest.raises(IssueFormatError) as enc:
        read_document(text, name="brief.txt")
    assert "UTF-8" in str(enc.value)
    with pytest.raises(IssueFormatError) as binary:
        read_document(bytes(range(1, 256)) * 4, name="brief.txt")
    assert "UTF-8" not in str(binary.value) and "二进制" in str(binary.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.builds(lambda b: b"PK\x03\x04" + b, st.binary(max_size=2048)),
        st.builds(lambda n: _small_docx()[:n], st.integers(0, 20_000)),
    ),
    st.sampled_from(["brief.docx", "brief.txt", "brief.html", ""]),
)
def test_any_bytes_import_or_fail_with_an_issue_format_error(data: bytes, name: str) -> None:
    try:
        text, _source, _warnings = read_document(data, name=name)
    except IssueFormatError as exc:
        assert "\n" not in str(exc) and "Traceback" not in str(exc)
        return
    assert isinstance(text, str)


# -- writing the result: never through a planted link, never a non-picture --------------

_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _page_with(data: bytes, kind: str = "png") -> bytes:
    import base64

    b64 = base64.b64encode(data).decode()
    return (
        "<html><body><h1>周报 第3期</h1><h2>一、要闻</h2><h3>1. 某通知</h3>"
        f'<p>正文。</p><p><img src="data:image/{kind};base64,{b64}" alt="图"></p>'
        "</body></html>"
    ).encode()


def test_planted_links_in_the_output_folder_are_not_followed(tmp_path: Path) -> None:
    from newsletter.content.textimport import import_issue_text

    src = tmp_path / "page.html"
    src.write_bytes(_page_with(_PNG))
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("ORIGINAL")
    (out / ".issue.md.tmp").symlink_to(victim)
    report, _ = import_issue_text(src, out / "issue.md")
    assert victim.read_text() == "ORIGINAL"
    assert not (out / "issue.md").is_symlink() and "某通知" in (out / "issue.md").read_text()
    assert report["images"]
    # an images/ folder that is a link elsewhere is refused, and nothing lands there
    out2, elsewhere = tmp_path / "out2", tmp_path / "elsewhere"
    out2.mkdir()
    elsewhere.mkdir()
    (out2 / "images").symlink_to(elsewhere)
    with pytest.raises(IssueFormatError):
        import_issue_text(src, out2 / "issue.md")
    assert list(elsewhere.iterdir()) == []


def test_only_pictures_are_written_as_images(tmp_path: Path) -> None:
    from newsletter.content.textimport import import_issue_text

    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'
    src = tmp_path / "page.html"
    src.write_bytes(_page_with(svg, "png"))  # declared a PNG, is not one
    report, _ = import_issue_text(src, tmp_path / "issue.md")
    assert report["images"] == []
    assert not (tmp_path / "images").exists() or list((tmp_path / "images").iterdir()) == []


def test_a_device_or_a_huge_file_is_one_line_and_nothing_is_read(tmp_path: Path) -> None:
    from newsletter.content.textimport import import_issue_text

    with pytest.raises(IssueFormatError) as err:
        import_issue_text(Path("/dev/zero"), tmp_path / "issue.md")
    assert "不是普通文件" in str(err.value) and "\n" not in str(err.value)


def test_a_hostile_numbering_start_is_drawn_as_a_number() -> None:
    from newsletter.content.wordimport import _format

    assert _format("upperRoman", 99_999_999) == "99999999"  # not a hundred million letters
    assert _format("upperRoman", 4) == "IV"
