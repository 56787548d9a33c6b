"""Word and web-page briefs: what the readers keep, what they drop, and hostile input."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.content.documents import read_document
from newsletter.content.htmlimport import read_html
from newsletter.content.parser import parse_issue
from newsletter.content.textimport import TextImportError, import_text
from newsletter.core.errors import IssueFormatError

from . import wordfiles


def _issue(data: bytes, name: str):  # type: ignore[no-untyped-def]
    text, source, _ = read_document(data, name=name)
    result = import_text(text, source=source)
    return parse_issue(result.markdown), result


def test_a_word_brief_keeps_links_tracked_insertions_and_drops_headers_and_deletions() -> None:
    issue, result = _issue(wordfiles.analyst_brief(), "brief.docx")
    first = issue.sections[0].items[0]
    assert first.meta_value("issuer") == "工业和信息化部"
    assert first.meta_value("url") == "https://www.miit.gov.cn/zwgk/zcwj/art/2026/art_0001.html"
    text = result.markdown
    assert "数字化改造全覆盖" in text and "基本实现" not in text  # ins kept, del dropped
    assert "注意保密" not in text and "第 1 页" not in text  # header and footer
    assert len(result.images) == 1 and result.images[0].data.startswith(b"\x89PNG")
    assert f"](images/{result.images[0].name})" in text


def test_word_numbering_is_drawn_from_its_definition_not_the_text() -> None:
    b = wordfiles.Brief()
    b.numbering("s", "upperRoman", "%1.")
    b.numbering("i", "decimalEnclosedCircle", "%1")
    b.para("标题一行")
    for k in range(2):
        b.numbered("s", f"部分{k}")
        for j in range(2):
            b.numbered("i", f"条目{k}{j}")
            b.para("正文。")
    text, source, _ = read_document(b.bytes(), name="x.docx")
    assert "I. 部分0" in text and "II. 部分1" in text and "① 条目00" in text
    issue = parse_issue(import_text(text, source=source).markdown)
    assert [(s.title, len(s.items)) for s in issue.sections] == [("部分0", 2), ("部分1", 2)]


def test_unsafe_link_schemes_and_scripts_never_survive_a_web_page() -> None:
    page = (
        "<html><body><h1>周报</h1><h2>一、要闻</h2><h3>条目</h3>"
        '<p>看<a href="javascript:alert(1)">这里</a>和<a href="https://ok.example/a">那里</a></p>'
        '<script>alert(2)</script><p onclick="x()">正文<img src=x onerror=alert(3)></p>'
        "</body></html>"
    ).encode()
    src = read_html(page, fragment=True)
    assert all(url.startswith("https://") for links in src.links.values() for _, url in links)
    md = import_text(src.text, source=src).markdown
    assert "javascript" not in md and "alert" not in md and "onerror" not in md
    assert "(<https://ok.example/a>)" in md


def test_an_old_doc_or_a_broken_docx_is_one_clear_line() -> None:
    with pytest.raises(IssueFormatError) as old:
        read_document(b"\xd0\xcf\x11\xe0" + b"\x00" * 100, name="brief.doc")
    assert ".docx" in old.value.message and "\n" not in old.value.message
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("word/document.xml", "<not-xml")
    with pytest.raises(IssueFormatError) as broken:
        read_document(buf.getvalue(), name="brief.docx")
    assert broken.value.message.startswith("Word 文件已损坏")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_any_unicode_as_a_web_page_imports_or_fails_with_one_line(body: str) -> None:
    page = f"<html><body><h1>{body[:20]}</h1><p>{body}</p><table><tr><td>{body[:5]}</td></tr></table></body></html>"
    try:
        src = read_html(page.encode("utf-8"), fragment=True)
        result = import_text(src.text, source=src)
    except (TextImportError, IssueFormatError) as exc:
        assert "\n" not in exc.message
        return
    parse_issue(result.markdown)


def test_the_cli_imports_a_word_file_and_writes_its_images(tmp_path: Path) -> None:
    (tmp_path / "brief.docx").write_bytes(wordfiles.analyst_brief())
    res = CliRunner().invoke(app, ["issue", "import", str(tmp_path / "brief.docx")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "brief.md").read_text(encoding="utf-8")
    images = list((tmp_path / "images").iterdir())
    assert len(images) == 1 and f"images/{images[0].name}" in md
    # the old name still works, for scripts
    res = CliRunner().invoke(
        app, ["issue", "import-text", str(tmp_path / "brief.docx"), "-o", str(tmp_path / "b.md")]
    )
    assert res.exit_code == 0 and (tmp_path / "b.md").read_text(encoding="utf-8") == md


def test_the_cli_refuses_an_old_doc_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "brief.doc").write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 64)
    res = CliRunner().invoke(app, ["issue", "import", str(tmp_path / "brief.doc")])
    assert res.exit_code == 2
    assert "另存为 .docx" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "brief.md").exists()
