"""Briefs in house styles nobody on the project had described, written with their
expected structure by testers who had not seen the importer's code, before any rule
was tuned on them: ``fixtures/outside`` (the first round), then ``outside2`` to
``outside9`` (eight more testers, each after the previous round's rules were built), in
plain text, Markdown, saved pages and Word files.

Each must import exactly, with no hints: title and number, every section and item in
order, the metadata values named, the tables, analysis blocks and images, the links,
and none of the page chrome listed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from newsletter.content.documents import read_document
from newsletter.content.model import Issue
from newsletter.content.parser import parse_issue
from newsletter.content.textimport import import_text

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(FIXTURES.glob("outside*/*.expect.json"))


def _plain(s: str) -> str:
    return re.sub(r"[\s《》\"“”]", "", s)


def _import(folder: Path, expect: dict) -> tuple[Issue, str, int]:  # type: ignore[type-arg]
    path = folder / expect["file"]
    text, source, _ = read_document(path.read_bytes(), name=path.name)
    result = import_text(text, source=source)
    return parse_issue(result.markdown), result.markdown, len(result.images)


def test_the_outside_corpus_is_there() -> None:
    names = [json.loads(p.read_text(encoding="utf-8"))["file"] for p in CASES]
    assert len(names) >= 70
    assert sum(n.endswith(".docx") for n in names) >= 7
    assert sum(n.endswith(".html") for n in names) >= 2


@pytest.mark.parametrize("path", CASES, ids=[p.name.split(".")[0] for p in CASES])
def test_a_brief_from_outside_imports_exactly(path: Path) -> None:
    expect = json.loads(path.read_text(encoding="utf-8"))
    issue, markdown, images = _import(path.parent, expect)
    assert _plain(issue.title) == _plain(expect["title"])
    if expect.get("number") is not None:
        assert issue.number == expect["number"]
    got = [(_plain(s.title), [_plain(i.title) for i in s.items]) for s in issue.sections]
    want = [(_plain(s["title"]), [_plain(t) for t in s["items"]]) for s in expect["sections"]]
    assert got == want
    items = {_plain(i.title): i for s in issue.sections for i in s.items}
    for row in expect.get("meta", []):
        fields = {_plain(m.key): _plain(m.value) for m in items[_plain(row["item"])].meta}
        for key, value in row["values"].items():
            assert _plain(value) in fields.values(), (row["item"], key, fields)
    assert markdown.count("\n|---") == expect.get("tables", 0)
    if "analysis" in expect:
        analysed = [i for i in items.values() if i.analysis_label is not None]
        assert len(analysed) == expect["analysis"]
    assert images >= expect.get("min_images", 0)
    for url in expect.get("links", []):
        assert url in markdown
    for junk in expect.get("chrome", []):
        assert junk not in markdown
