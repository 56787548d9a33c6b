"""The 998-octet rule: folding never changes what a reader sees."""

from __future__ import annotations

import re

from htmlcheck import visible_text

from newsletter.render.context import SLOT_MAX_LEN
from newsletter.render.lines import LIMIT, fold_html, fold_text_line, max_line_octets

CJK = "营商环境政策周报数据要素融资跨境贸易便利化措施"


def _cjk(n: int) -> str:
    return (CJK * (n // len(CJK) + 1))[:n]


def _newlines_only_inside_tags(html: str) -> bool:
    """True when every newline sits inside a tag or replaced an ASCII space."""
    depth = 0
    for i, ch in enumerate(html):
        if ch == "<":
            depth = 1
        elif ch == ">":
            depth = 0
        elif ch == "\n" and depth == 0:
            before, after = html[i - 1 : i], html[i + 1 : i + 2]
            if not (before.isascii() or after.isascii()) and before and after:
                return False  # a newline between two CJK characters in text
    return True


def test_5000_character_paragraph_without_spaces_is_folded_invisibly() -> None:
    para = _cjk(5000)
    html = f'<!DOCTYPE html><html><body><p style="margin:0 0 14px">{para}</p></body></html>'
    assert max_line_octets(html) > 15000
    out = fold_html(html)
    assert max(len(line.encode()) for line in out.split("\n")) <= LIMIT
    assert visible_text(out) == visible_text(html)
    assert _newlines_only_inside_tags(out)
    assert "<span\n></span>" in out


def test_text_run_starts_on_a_fresh_line_by_breaking_inside_the_preceding_tag() -> None:
    run = _cjk(300)  # 900 bytes: fits a line, but not after 500 bytes of other text
    html = "<div>" + _cjk(170) + '<b class="x">' + run + "</b></div>"
    out = fold_html(html)
    assert max_line_octets(out) <= LIMIT
    assert visible_text(out) == visible_text(html)
    assert '<b class="x"\n>' in out or '<b\nclass="x">' in out
    assert "<span\n></span>" not in out  # no need for the span trick here


def test_long_tag_breaks_between_attributes_and_inside_style() -> None:
    style = "; ".join(f"prop{i}:value{i}" for i in range(200))
    html = f'<p><a href="https://example.org/x" title="t" style="{style}">链接</a></p>'
    out = fold_html(html)
    assert max_line_octets(out) <= LIMIT
    assert 'href="https://example.org/x"' in out  # never broken inside a URL
    assert visible_text(out) == visible_text(html)


def test_entities_and_ascii_spaces() -> None:
    words = " ".join(["word&amp;word"] * 600)
    html = f"<p>{words}</p><p>{_cjk(400)}&nbsp;&#847;{_cjk(400)}&zwnj;{_cjk(400)}</p>"
    out = fold_html(html)
    assert max_line_octets(out) <= LIMIT
    assert visible_text(out).replace("\n", " ") == visible_text(html)


def test_slots_count_at_their_maximum_length() -> None:
    # A line of 960 bytes plus one %%NAME%% is fine as written (968) but not once filled.
    html = "<p>" + "a" * 950 + "%%NAME%%" + _cjk(300) + "</p>"
    out = fold_html(html)
    assert "%%NAME%%" in out
    for line in out.split("\n"):
        filled = line.replace("%%NAME%%", "x" * SLOT_MAX_LEN["NAME"])
        assert len(filled.encode()) <= LIMIT


def test_pre_keeps_its_spaces() -> None:
    code = " ".join(["x = 1"] * 400)
    out = fold_html(f"<pre>{code}</pre>")
    assert max_line_octets(out) <= LIMIT
    assert visible_text(out) == code  # spaces inside <pre> are never turned into newlines


def test_short_document_is_untouched() -> None:
    html = "<p>短文本</p>\n<p>second</p>"
    assert fold_html(html) is html


def test_fold_text_line() -> None:
    line = _cjk(2000)
    pieces = fold_text_line(line)
    assert "".join(pieces) == line
    assert all(len(p.encode()) <= LIMIT for p in pieces)
    assert re.fullmatch(r"[^\n]+", pieces[0])


def test_text_lines_are_cut_after_punctuation_only_when_998_octets_force_it() -> None:
    from newsletter.render.text import _wrap

    sentence = "国有企业改革深化提升行动，"  # 13 characters, 39 octets
    para = sentence * 60  # 2,340 octets
    assert _wrap(para) == [para]  # Chinese is never wrapped at a column
    assert _wrap("word " * 30)[0] == ("word " * 14).strip()  # Latin still is
    pieces = fold_text_line(para)
    assert "".join(pieces) == para and len(pieces) == 3
    assert all(len(p.encode()) <= 998 for p in pieces)
    assert all(p.endswith("，") for p in pieces)
