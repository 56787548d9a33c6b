"""Fixtures for the renderer tests: hand-built issues (no parser needed) and a context."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from render_factory import make_issue, small_issue

from newsletter.content.model import Issue
from newsletter.render.context import RenderContext

ROOT = Path(__file__).resolve().parents[2]


def make_ctx(**overrides: object) -> RenderContext:
    values: dict[str, object] = {
        "base_url": "https://news.example.org/",
        "publication_name": "营商环境政策周报",
        "publication_slug": "weekly",
        "postal_address": "上海市黄浦区示例路 1 号 200001",
        "sender_name": "示例研究院",
    }
    values.update(overrides)
    return RenderContext(**values)  # type: ignore[arg-type]


@pytest.fixture
def ctx() -> RenderContext:
    return make_ctx()


@pytest.fixture
def big_issue() -> Issue:
    """~28,000 characters: 4 policy items with meta and long analysis, 15 news items."""
    return make_issue()


@pytest.fixture
def small() -> Issue:
    """Small enough to stay a full email."""
    return small_issue()
