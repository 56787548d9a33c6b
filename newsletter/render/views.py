"""Channel-neutral view models built from the document model.

Each renderer supplies hooks (how an ``<a>`` is written, how an image src is
chosen, how the 原文链接 meta value is shown, optional inline styles); the
walk itself — and therefore the order of links met — is the same everywhere:
issue intro, then per section its intro, then per item meta, body, analysis.
"""

from __future__ import annotations

import html as _html
from collections.abc import Callable
from dataclasses import dataclass, field

from markupsafe import Markup

from newsletter.content.model import Block, Issue, Item, Section
from newsletter.core.safety.urlpolicy import safe_url
from newsletter.render.common import (
    AnchorHook,
    BlockStyle,
    ImageHook,
    blocks_html,
    item_anchor,
    item_summary,
    section_anchor,
)
from newsletter.render.labels import labels

__all__ = ["Hooks", "ItemView", "SectionView", "build_item", "build_sections", "intro_html"]


@dataclass(slots=True)
class Hooks:
    anchor: AnchorHook
    image: ImageHook
    #: (url, parser's link position) -> html shown as the value of a url meta field
    meta_url: Callable[[str, int | None], str]
    style: BlockStyle = field(default_factory=BlockStyle)


@dataclass(slots=True)
class ItemView:
    anchor: str
    number: int
    title: str
    meta: list[tuple[str, Markup]]
    body: Markup
    analysis_label: str
    analysis: Markup
    summary: str
    html_chars: int = 0


@dataclass(slots=True)
class SectionView:
    anchor: str
    label: str
    title: str
    intro: Markup
    items: list[ItemView]


def _blocks(issue: Issue, blocks: list[Block], hooks: Hooks) -> str:
    return blocks_html(blocks, issue, anchor=hooks.anchor, image=hooks.image, style=hooks.style)


def intro_html(issue: Issue, hooks: Hooks) -> Markup:
    return Markup(_blocks(issue, issue.intro, hooks))


def build_item(issue: Issue, section: Section, item: Item, hooks: Hooks) -> ItemView:
    meta: list[tuple[str, Markup]] = []
    for m in item.meta:
        is_url = m.role == "url" or (
            m.value.startswith(("http://", "https://")) and " " not in m.value
        )
        if is_url and safe_url(m.value.strip()) is not None:
            meta.append((m.key, Markup(hooks.meta_url(m.value.strip(), m.link))))
        else:
            meta.append((m.key, Markup(_html.escape(m.value))))
    body = Markup(_blocks(issue, item.body, hooks))
    analysis = Markup(_blocks(issue, item.analysis, hooks))
    label = item.analysis_label or labels(issue.variant)["analysis"]
    return ItemView(
        anchor=item_anchor(section, item),
        number=item.number,
        title=item.title,
        meta=meta,
        body=body,
        analysis_label=label,
        analysis=analysis,
        summary=item_summary(item),
    )


def build_sections(issue: Issue, hooks: Hooks) -> list[SectionView]:
    out: list[SectionView] = []
    for s in issue.sections:
        intro = Markup(_blocks(issue, s.intro, hooks))
        items = [build_item(issue, s, it, hooks) for it in s.items]
        label = f"{s.numeral}、{s.title}" if s.numeral else s.title
        out.append(SectionView(section_anchor(s), label, s.title, intro, items))
    return out
