"""Packing an issue into at most 8 WeChat articles under the character limit.

A section too long for one article is split between items ("（续）" parts), as evenly as
still fits; an item too long for one article is split at paragraph boundaries into
continuation parts ("title（续）", the metadata staying with the first). Adjacent small
sections then share an article until the draft fits. A paragraph, an item or an
introduction that cannot fit alone is a :class:`~newsletter.render.errors.WeChatLimitError`
naming it and by how much.
"""

from __future__ import annotations

from dataclasses import replace

from newsletter.content.model import Block, Issue, Item, Section
from newsletter.render.errors import WeChatLimitError
from newsletter.render.labels import labels
from newsletter.render.wechat.markup import (
    Chunk,
    Fragment,
    assemble,
    intro_fragment,
    item_fragment,
)

__all__ = ["merge", "split_section"]


def _balanced(weights: list[int], k: int) -> list[int]:
    """Cut points splitting ``weights`` into ``k`` contiguous runs with the least maximum."""
    n = len(weights)
    pre = [0]
    for w in weights:
        pre.append(pre[-1] + w)
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0
    for j in range(1, k + 1):
        for i in range(1, n + 1):
            for m in range(j - 1, i):
                v = max(best[j - 1][m], pre[i] - pre[m])
                if v < best[j][i]:
                    best[j][i], cut[j][i] = v, m
    cuts = []
    i = n
    for j in range(k, 0, -1):
        cuts.append(i)
        i = cut[j][i]
    return sorted(cuts)


def _item_parts(
    issue: Issue, s: Section, it: Item, frag: Fragment, limit: int
) -> list[tuple[Item, Fragment]]:
    """The item as one fragment, or split at paragraph boundaries into continuation parts.

    The first part keeps the metadata; later parts are titled "title（续）".
    Body paragraphs come first, then the analysis (its label repeated on
    each part that holds some of it).
    """
    if len(frag.html) < limit // 2 or (
        len(assemble(issue, [Chunk(s, None, [(it, frag)], False)])[0]) < limit
    ):
        return [(it, frag)]
    units = [("body", b) for b in it.body] + [("analysis", b) for b in it.analysis]
    cont = labels(issue.variant)["continued"]

    def piece(k: int, chosen: list[tuple[str, Block]]) -> Item:
        body = [b for kind, b in chosen if kind == "body"]
        analysis = [b for kind, b in chosen if kind == "analysis"]
        return replace(
            it,
            title=it.title if k == 0 else f"{it.title}{cont}",
            meta=list(it.meta) if k == 0 else [],
            body=body,
            analysis=analysis,
            analysis_label=it.analysis_label if analysis else None,
            summary=it.summary if k == 0 else None,
        )

    def size(item: Item) -> int:
        f = item_fragment(issue, s, item)
        return len(assemble(issue, [Chunk(s, None, [(item, f)], True)])[0])

    parts: list[tuple[Item, Fragment]] = []
    current: list[tuple[str, Block]] = []
    for unit in units:
        n = size(piece(len(parts), [*current, unit]))
        if n < limit:
            current.append(unit)
            continue
        if current:
            done = piece(len(parts), current)
            parts.append((done, item_fragment(issue, s, done)))
            current = [unit]
            n = size(piece(len(parts), current))
        if n >= limit:
            raise WeChatLimitError(
                f"WeChat: a paragraph of item {s.numeral or s.number}.{it.number} 《{it.title}》 "
                f"alone is {n:,} characters with markup; an article must stay below {limit:,}. "
                "Split that paragraph in the source."
            )
    if current or not parts:
        done = piece(len(parts), current)
        parts.append((done, item_fragment(issue, s, done)))
    return parts


def split_section(issue: Issue, s: Section, limit: int) -> list[Chunk]:
    """The section as one chunk, or as few balanced chunks as fit (split between items)."""
    intro = intro_fragment(issue, s)
    items = [(it, item_fragment(issue, s, it)) for it in s.items]
    whole = Chunk(s, intro, items, False)
    if len(assemble(issue, [whole])[0]) < limit:
        return [whole]
    if not items:  # the introduction alone is too long: nothing to split between
        size = len(assemble(issue, [whole])[0])
        raise WeChatLimitError(
            f"WeChat: section {s.numeral or s.number} 《{s.title}》 has no items and its "
            f"introduction alone is {size:,} characters with markup; an article must stay "
            f"below {limit:,}. Shorten it (is a code fence ``` left open?)."
        )
    # an item too long for one article becomes continuation parts
    items = [part for it, frag in items for part in _item_parts(issue, s, it, frag, limit)]
    # Greedy first: it finds the smallest number of parts.
    chunks: list[Chunk] = []
    cur = Chunk(s, intro, [], False)
    for it, frag in items:
        trial = Chunk(s, cur.intro, [*cur.items, (it, frag)], cur.continued)
        if len(assemble(issue, [trial])[0]) < limit:
            cur = trial
            continue
        if cur.items:
            chunks.append(cur)
            cur = Chunk(s, None, [(it, frag)], True)
            size = len(assemble(issue, [cur])[0])
        else:
            size = len(assemble(issue, [trial])[0])
        if size >= limit:
            raise WeChatLimitError(
                f"WeChat: item {s.numeral or s.number}.{it.number} 《{it.title}》 alone is "
                f"{size:,} characters with markup; an article must stay below {limit:,}. "
                "Shorten the item or split it into two items in the source."
            )
    chunks.append(cur)
    # Then even the parts out, if the balanced cut still fits everywhere.
    weights = [len(f.html) for _, f in items]
    if intro is not None:
        weights[0] += len(intro.html)
    start = 0
    balanced: list[Chunk] = []
    for end in _balanced(weights, len(chunks)):
        balanced.append(Chunk(s, intro if start == 0 else None, items[start:end], start > 0))
        start = end
    if all(c.items and len(assemble(issue, [c])[0]) < limit for c in balanced):
        return balanced
    return chunks


def merge(issue: Issue, groups: list[list[Chunk]], limit: int, room: int) -> list[list[Chunk]]:
    """Let adjacent small groups share an article until ``room`` articles suffice."""
    while len(groups) > room:
        best: tuple[int, int] | None = None
        for i in range(len(groups) - 1):
            size = len(assemble(issue, groups[i] + groups[i + 1])[0])
            if size < limit and (best is None or size < best[1]):
                best = (i, size)
        if best is None:
            break
        i = best[0]
        groups[i : i + 2] = [groups[i] + groups[i + 1]]
    return groups
