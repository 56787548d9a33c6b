"""The accuracy corpus (tests/content/corpus.py): every brief imports exactly, with no hints."""

from __future__ import annotations

import pytest

from .corpus import CASES, OUTLINED, Case, check, outline_exact, run


def test_the_corpus_has_at_least_twelve_briefs_in_three_formats() -> None:
    names = [c.load()[1] for c in CASES]
    assert len(CASES) + len(OUTLINED) >= 12
    assert sum(n.endswith(".docx") for n in names) >= 3
    assert sum(n.endswith(".html") for n in names) >= 2


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_aspect_is_exact(case: Case) -> None:
    got = check(case, run(case))
    assert got == dict.fromkeys(got, True)


@pytest.mark.parametrize("name", OUTLINED)
def test_every_line_of_the_house_styles_is_classed_right(name: str) -> None:
    assert outline_exact(name)
