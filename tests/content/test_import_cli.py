"""``newsletter issue import-text`` end to end: outline, hints, bad input, encodings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from newsletter.cli.main import app

runner = CliRunner()
REAL = Path(__file__).parent / "fixtures" / "real-brief-2021-08-02.txt"

BRIEF = """標題：測試周報
期數：第3期
一、政策
1、第一條
正文一
重點提示
正文二
"""


def _front_matter(path: Path) -> dict[str, object]:
    return yaml.safe_load(path.read_text(encoding="utf-8").split("---")[1])


def test_real_brief_import_lint_and_render_without_hand_edits(tmp_path: Path) -> None:
    src = tmp_path / "brief.txt"
    src.write_bytes(REAL.read_bytes())
    r = runner.invoke(app, ["issue", "import-text", str(src), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["script"] == "Hant" and len(report["contents"]) == 25
    md = tmp_path / "brief.md"
    r = runner.invoke(app, ["issue", "lint", str(md)])
    assert r.exit_code == 0, r.output
    assert "0 error(s)" in r.output
    for variant in ("zh-Hans", "zh-Hant"):
        out = tmp_path / variant
        r = runner.invoke(app, ["issue", "render", str(md), "--variant", variant, "-o", str(out)])
        assert r.exit_code == 0, r.output
        rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
        assert rep["issue"]["variant"] == variant
        names = {p.name for p in out.iterdir()}
        assert {"email.html", "email.txt", "web.html", "wechat-1.html"} <= names
        for name in names:
            assert "第0期" not in (out / name).read_text(encoding="utf-8")


def test_outline_lists_every_line_with_its_class(tmp_path: Path) -> None:
    src = tmp_path / "b.txt"
    src.write_text("首頁 > 周報 > 正文\n" + BRIEF, encoding="utf-8")
    r = runner.invoke(app, ["issue", "import-text", str(src), "--outline"])
    assert r.exit_code == 0, r.output
    rows = [line.split(None, 2) for line in r.output.splitlines() if line[:5].strip().isdigit()]
    classes = {int(n): label.split("(")[1].rstrip(")") for n, label, *_ in rows}
    assert "页面杂项(chrome)" in r.output and "← 网页导航路径" in r.output
    assert classes == {
        1: "chrome",
        2: "header",
        3: "header",
        4: "section",
        5: "item",
        6: "body",
        7: "body",
        8: "body",
        9: "blank",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]  # an outline writes nothing
    r = runner.invoke(app, ["issue", "import", str(src), "--outline", "-o", str(tmp_path / "o.md")])
    assert r.exit_code == 0 and (tmp_path / "o.md").exists()  # unless asked to


def test_hints_are_kept_in_front_matter_and_honoured_on_rerun(tmp_path: Path) -> None:
    src = tmp_path / "b.txt"
    src.write_text(BRIEF, encoding="utf-8")
    md = tmp_path / "b.md"
    r = runner.invoke(app, ["issue", "import-text", str(src), "--hint", "6=item"])
    assert r.exit_code == 0, r.output
    assert _front_matter(md)["import_hints"] == {6: "item"}
    assert "### 2. 重點提示" in md.read_text(encoding="utf-8")
    # the editor re-runs the import later: the kept hint applies again
    r = runner.invoke(app, ["issue", "import-text", str(src)])
    assert r.exit_code == 0, r.output
    assert "### 2. 重點提示" in md.read_text(encoding="utf-8")
    r = runner.invoke(app, ["issue", "import-text", str(src), "--hint", "6=nonsense"])
    assert r.exit_code == 2 and "CLASS" in r.output


def test_markdown_input_is_never_overwritten(tmp_path: Path) -> None:
    src = tmp_path / "notes.md"
    src.write_text(BRIEF, encoding="utf-8")
    r = runner.invoke(app, ["issue", "import-text", str(src)])
    assert r.exit_code == 0, r.output
    assert src.read_text(encoding="utf-8") == BRIEF
    assert (tmp_path / "notes.import.md").exists()
    r = runner.invoke(app, ["issue", "import-text", str(src), "--out", str(src)])
    assert r.exit_code == 2
    assert "overwrite" in r.output and "覆盖" in r.output
    assert src.read_text(encoding="utf-8") == BRIEF


def test_empty_and_chrome_only_files_are_one_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"\n \n")
    chrome = tmp_path / "chrome.txt"
    chrome.write_text("首頁 》新聞 》動態\n閱讀數:12\n上一篇：無\nBaidu\n", encoding="utf-8")
    for path, why in ((empty, "empty"), (chrome, "only page chrome")):
        proc = subprocess.run(
            [sys.executable, "-m", "newsletter.cli.main", "issue", "import-text", str(path)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr + proc.stdout
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert len(lines) == 1, proc.stderr
        assert "nothing to import" in lines[0] and "没有可导入的内容" in lines[0]
        assert why in lines[0] and str(tmp_path) not in lines[0]
        assert not path.with_suffix(".md").exists()
        assert not list(tmp_path.glob(".*.tmp"))


def test_cp950_big5hkscs_and_utf16_sources_decode(tmp_path: Path) -> None:
    text = BRIEF.replace("正文一", "恒生指數上升，國資周報。")
    for enc, data in (
        ("cp950", text.encode("cp950")),
        ("big5hkscs", text.replace("恒生", "恒生𥚃").encode("big5hkscs")),
        ("utf16", text.encode("utf-16")),
    ):
        src = tmp_path / f"{enc}.txt"
        src.write_bytes(data)
        r = runner.invoke(app, ["issue", "import-text", str(src)])
        assert r.exit_code == 0, (enc, r.output)
        md = src.with_suffix(".md").read_text(encoding="utf-8")
        assert "恒生" in md and "### 1. 第一條" in md, enc


def test_an_unnumbered_issue_is_refused_by_issue_add_never_stored_as_0(  # type: ignore[no-untyped-def]
    sqlite_settings, tmp_path: Path
) -> None:
    src = tmp_path / "b.txt"
    src.write_text(BRIEF.replace("期數：第3期\n", ""), encoding="utf-8")
    assert runner.invoke(app, ["issue", "import-text", str(src)]).exit_code == 0
    r = runner.invoke(app, ["issue", "add", str(tmp_path / "b.md")])
    assert r.exit_code == 2
    assert "number: N" in r.output and "期数" in r.output and "第0期" not in r.output
    r = runner.invoke(app, ["issue", "import-text", str(src), "--number", "12"])
    assert r.exit_code == 0
    r = runner.invoke(app, ["issue", "add", str(tmp_path / "b.md")])
    assert r.exit_code == 0 and "第12期" in r.output
