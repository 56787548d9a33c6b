"""Feed to draft against hostile feeds: whatever a feed says, the draft keeps its
structure (one item per feed entry, each with its own meta block and link) and
nothing in it is followed or expanded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from newsletter.content.parser import parse_issue
from newsletter.core.safety.pinned import set_resolver
from newsletter.issues.feeds import build_markdown, parse_config, read_feeds
from tests.httpserve import Names, serve_paths

XML = {"Content-Type": "application/xml; charset=utf-8"}


def _rss(entries: list[tuple[str, str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><description>{sm}</description></item>"
        for t, link, sm in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>x</title>{body}</channel></rss>"
    ).encode()


def _draft(feed: bytes) -> tuple[list[str], str]:
    with serve_paths({"/f.xml": (200, XML, feed)}) as base:
        cfg = parse_config(f"feeds:\n  - name: 源\n    url: {base}/f.xml\n")
        items, problems = read_feeds(cfg)
    assert problems == []
    md = build_markdown(
        cfg,
        items,
        publication="周报",
        number=3,
        since=dt.date(2026, 11, 1),
        today=dt.date(2026, 11, 8),
    )
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
    lols = "".join(f'<!ENTITY l{n} "{("&l" + str(n - 1) + ";") * 10}">' for n in range(1, 10))
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "lol">{lols}'
        '<!ENTITY f SYSTEM "file:///etc/passwd">]><rss version="2.0"><channel>'
        "<item><title>a &l9; b &f;</title><link>https://x.cn/1</link></item>"
        "</channel></rss>"
    ).encode()
    _links, md = _draft(bomb)
    assert "lollol" not in md and "root:" not in md
    assert len(md) < 5_000


def test_an_impossible_date_does_not_stop_the_other_feeds() -> None:
    hostile = (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
        + "".join(
            f'<entry><title>坏日期{n}</title><link href="https://x.cn/d{n}"/>'
            f"<updated>{d}</updated></entry>"
            for n, d in enumerate(
                ["0000-00-00T00:00:00Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]
            )
        )
        + "</feed>"
    ).encode()
    good = _rss([("好条目", "https://x.cn/ok", "摘要")])
    with serve_paths({"/bad.xml": (200, XML, hostile), "/good.xml": (200, XML, good)}) as base:
        cfg = parse_config(
            f"feeds:\n  - name: 坏源\n    url: {base}/bad.xml\n"
            f"  - name: 好源\n    url: {base}/good.xml\n"
        )
        items, problems = read_feeds(cfg)
    assert problems == []
    assert [i.title for i in items] == ["坏日期0", "坏日期1", "坏日期2", "好条目"]
    assert all(i.published is None for i in items[:3])


@pytest.fixture
def names() -> Iterator[Names]:
    """127.0.0.2 plays a public address (a test server listens there); every other
    address keeps its real classification (127.0.0.1 is internal)."""
    names = Names()
    set_resolver(names, public=frozenset({"127.0.0.2"}))
    yield names
    set_resolver(None)


def test_a_public_feed_cannot_redirect_the_reader_inward(names: Names) -> None:
    """A feed on a public address that redirects to an internal one (here loopback, as a
    cloud metadata address would be) is refused and named in the report; the internal
    page is never requested."""
    secret = _rss([("内部", "https://x.cn/secret", "不应读取")])
    asked: list[str] = []

    def inner() -> tuple[int, dict[str, str], bytes]:
        asked.append("inner")
        return 200, XML, secret

    with serve_paths({"/inner.xml": inner}) as base:
        port = base.rsplit(":", 1)[1]
        names["localhost"] = ["127.0.0.1"]
        names["news.example.test"] = ["127.0.0.2"]
        with serve_paths(
            {
                "/f.xml": (302, {"Location": "/hop.xml"}, b""),
                "/hop.xml": (302, {"Location": f"http://localhost:{port}/inner.xml"}, b""),
            },
            host="127.0.0.2",
        ) as outer:
            url = outer.replace("127.0.0.2", "news.example.test")
            cfg = parse_config(f"feeds:\n  - name: 外源\n    url: {url}/f.xml\n")
            items, problems = read_feeds(cfg)
    assert items == [] and asked == []
    assert (
        len(problems) == 1 and "外源" in problems[0] and "redirected to an internal" in problems[0]
    )


def _rebinding(names: Names, answers: list[str]) -> tuple[list, list, list, list]:
    """A feed at feed.example.test:P, where 127.0.0.2:P serves the public feed and
    127.0.0.1:P an internal one; the name answers ``answers`` in turn."""
    public = _rss([("公开条目", "https://x.cn/pub", "摘要")])
    secret = _rss([("内部条目", "https://x.cn/secret", "不应读取")])
    inner_seen: list[tuple[str, str]] = []
    outer_seen: list[tuple[str, str]] = []
    with serve_paths({"/f.xml": (200, XML, secret)}, seen=inner_seen) as inner:
        port = int(inner.rsplit(":", 1)[1])
        with serve_paths(
            {"/f.xml": (200, XML, public)}, host="127.0.0.2", port=port, seen=outer_seen
        ):
            names["feed.example.test"] = answers
            cfg = parse_config(
                f"feeds:\n  - name: 源\n    url: http://feed.example.test:{port}/f.xml\n"
            )
            items, problems = read_feeds(cfg)
    return items, problems, inner_seen, outer_seen


def test_dns_rebinding_between_check_and_connect_is_refused(
    names: Names,
) -> None:
    """The name answers the check with a public address and the next lookup with
    127.0.0.1: the reader never connects to the internal address."""
    items, problems, inner_seen, outer_seen = _rebinding(names, ["127.0.0.2", "127.0.0.1"])
    assert items == [] and inner_seen == [] and outer_seen == []
    assert len(problems) == 1 and "resolves to an internal address" in problems[0]


def test_the_connection_goes_to_the_address_checked(names: Names) -> None:
    """Each request resolves once and connects to the address it checked, keeping the
    Host header; a later answer (127.0.0.1) is never used for it."""
    items, problems, inner_seen, outer_seen = _rebinding(
        names, ["127.0.0.2", "127.0.0.2", "127.0.0.1"]
    )
    assert problems == [] and [i.title for i in items] == ["公开条目"]
    assert inner_seen == [] and len(outer_seen) == 1
    assert outer_seen[0][1].startswith("feed.example.test:")
    assert names.lookups["feed.example.test"] == 2  # the check, and the connection


def test_an_internal_feed_may_redirect_within_and_hops_are_bounded() -> None:
    """A feed the operator listed on an internal address may redirect (here within
    loopback); a redirect loop ends after five hops, named in the report."""
    good = _rss([("内网条目", "https://x.cn/in", "摘要")])
    with serve_paths(
        {
            "/old.xml": (301, {"Location": "/new.xml"}, b""),
            "/new.xml": (200, XML, good),
            "/loop.xml": (302, {"Location": "/loop.xml"}, b""),
            "/ftp.xml": (302, {"Location": "ftp://x.cn/f.xml"}, b""),
        }
    ) as base:
        cfg = parse_config(
            f"feeds:\n  - name: 内网\n    url: {base}/old.xml\n"
            f"  - name: 循环\n    url: {base}/loop.xml\n"
            f"  - name: 非网页\n    url: {base}/ftp.xml\n"
        )
        items, problems = read_feeds(cfg)
    assert [i.title for i in items] == ["内网条目"]
    assert len(problems) == 2
    assert "循环" in problems[0] and "too many redirects" in problems[0]
    assert "非网页" in problems[1] and "non-web address" in problems[1]


def test_public_means_every_address_is_global() -> None:
    from newsletter.issues.feeds import _public

    for host in (
        "127.0.0.1",
        "localhost",
        "10.1.2.3",
        "169.254.169.254",
        "::1",
        "0.0.0.0",
        "192.168.1.1",
        "no-such-host.invalid",
    ):
        assert not _public(host), host
    assert _public("8.8.8.8") and _public("2001:4860:4860::8888")
