"""When readability's pick of a saved page leaves out a paragraph of prose, the page is
read whole (``htmlimport._prose_left_out``): found in order, moved, repeated or missing,
and in one pass over a page of any size."""

from __future__ import annotations

import lxml.html

from newsletter.content.htmlimport import _prose_left_out

_P = "第{}段的正文足够长，用来检验整页的判断是否正确，也检验它的时间是否随段落数线性增长。"


def _div(paras: list[str]) -> object:
    return lxml.html.fromstring("<div>" + "".join(f"<p>{p}</p>" for p in paras) + "</div>")


def test_every_paragraph_kept_in_order_or_moved_is_found() -> None:
    paras = [_P.format(i) for i in range(6)]
    assert not _prose_left_out(_div(paras), _div(paras))
    moved = paras[3:] + paras[:3]  # readability put the last half first
    assert not _prose_left_out(_div(moved), _div(paras))
    repeated = [*paras, paras[1]]  # the page repeats a paragraph the pick has once
    assert not _prose_left_out(_div(paras), _div(repeated))


def test_a_paragraph_left_out_is_noticed_wherever_it_stands() -> None:
    paras = [_P.format(i) for i in range(6)]
    for gone in (0, 3, 5):
        assert _prose_left_out(_div(paras[:gone] + paras[gone + 1 :]), _div(paras))


def test_short_lines_and_unfinished_sentences_do_not_count() -> None:
    paras = [_P.format(i) for i in range(3)]
    page = [*paras, "导航：首页 / 关于我们", _P.format(9).rstrip("。")]
    assert not _prose_left_out(_div(paras), _div(page))


def test_a_huge_page_is_judged_in_one_pass() -> None:
    """200,000 paragraphs, all kept: each is looked for after the one before. (No timing:
    searching the whole kept text for each took 3 s at 16,000 and grows with the square,
    hours here; the suite's timeout fails it.)"""
    paras = [_P.format(i) for i in range(200_000)]
    assert not _prose_left_out(_div(paras), _div(paras))
