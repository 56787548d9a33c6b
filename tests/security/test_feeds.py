"""Feed to draft against hostile feeds: whatever a feed says, the draft keeps its
structure (one item per feed entry, each with its own meta block and link) and
nothing in it is followed or expanded."""

from __future__ import annotations

import datetime as dt

from newsletter.content.parser import parse_issue
from newsletter.feeds import build_markdown, parse_config, read_feeds
from tests.httpserve import serve_paths

XML = {"Content-Type": "application/xml; charset=utf-8"}


def _rss(entries: list[tuple[str, str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><description>{sm}</description></item>"
        for t, link, sm in entries
    )
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>x</title>{body}</channel></rss>").encode()


def _draft(feed: bytes) -> tuple[list[str], str]:
    with serve_paths({"/f.xml": (200, XML, feed)}) as base:
        cfg = parse_config(f"feeds:\n  - name: 源\n    url: {base}/f.xml\n")
        items, problems = read_feeds(cfg)
    assert problems == []
    md = build_markdown(cfg, items, publication="周报", number=3,
                        since=dt.date(2026, 11, 1), today=dt.date(2026, 11, 8))
    return [i.link for i in items], md


def test_hostile_summaries_and_links_keep_the_structure() -> None:
    entries = [
        ("栅栏", "https://x.cn/1", "```"),
        ("波浪栅栏", "https://x.cn/2", "~~~ python"),
        ("引用定义", "https://x.cn/3", "[x]: https://evil.example/"),
        ("脚注", "https://x.cn/4", "[^1]: 注"),
        # a link with a line break: the rest of the line must not become Markdown
        ("换行链接", "https://x.cn/5\n:::\n\n## 九、伪造的栏目\n\n### 1. 伪造", "摘要"),
        ("空格链接", "https://x.cn/6 ::: meta", "摘要"),
        ("最后一条", "https://x.cn/7", "正文"),
    ]
    links, md = _draft(_rss(entries))
    assert len(links) == len(entries)
    assert all(not any(c.isspace() for c in link) for link in links), links
    doc = parse_issue(md)
    assert len(doc.sections) == 1, md
    items = doc.sections[0].items
    assert [i.title for i in items] == [t for t, _l, _s in entries], md
    assert [i.meta_value("url") for i in items] == links
    # every summary is still the item's text, shown as written
    assert "\n## 九" not in md and "\n### 1. 伪造" not in md


def test_entity_bombs_and_external_entities_are_not_expanded() -> None:
    lols = "".join(
        f'<!ENTITY l{n} "{("&l" + str(n - 1) + ";") * 10}">' for n in range(1, 10)
    )
    bomb = (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "lol">{lols}'
            '<!ENTITY f SYSTEM "file:///etc/passwd">]><rss version="2.0"><channel>'
            "<item><title>a &l9; b &f;</title><link>https://x.cn/1</link></item>"
            "</channel></rss>").encode()
    _links, md = _draft(bomb)
    assert "lollol" not in md and "root:" not in md
    assert len(md) < 5_000


def test_an_impossible_date_does_not_stop_the_other_feeds() -> None:
    hostile = ('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
               + "".join(f'<entry><title>坏日期{n}</title><link href="https://x.cn/d{n}"/>'
                         f"<updated>{d}</updated></entry>"
                         for n, d in enumerate(["0000-00-00T00:00:00Z", "9999-12-31T23:59:59-23:59",
                                                "0001-01-01T00:00:00+23:59"]))
               + "</feed>").encode()
    good = _rss([("好条目", "https://x.cn/ok", "摘要")])
    with serve_paths({"/bad.xml": (200, XML, hostile), "/good.xml": (200, XML, good)}) as base:
        cfg = parse_config(f"feeds:\n  - name: 坏源\n    url: {base}/bad.xml\n"
                           f"  - name: 好源\n    url: {base}/good.xml\n")
        items, problems = read_feeds(cfg)
    assert problems == []
    assert [i.title for i in items] == ["坏日期0", "坏日期1", "坏日期2", "好条目"]
    assert all(i.published is None for i in items[:3])
