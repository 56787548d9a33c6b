"""Shared fixtures for the content tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.content.model import Issue
from newsletter.content.parser import load_issue

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAMPLE = EXAMPLES / "issue-sample.md"
BRIEF = EXAMPLES / "brief-plain.txt"


@pytest.fixture(scope="session")
def sample_text() -> str:
    return SAMPLE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def sample_issue() -> Issue:
    issue, warnings = load_issue(SAMPLE)
    assert warnings == []
    return issue
