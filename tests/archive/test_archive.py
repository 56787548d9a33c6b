"""The public archive index, its search and its feeds (real database, real app).

Only issues that were approved and sent appear; drafts never do, even after a
console preview rendered them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import feedparser
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from newsletter.core.config import Settings
from newsletter.core.db import session_scope
from newsletter.issues.archive import like_pattern
from newsletter.issues.store import create_issue, render_issue
from newsletter.models import Issue, Publication
from newsletter.web.app import create_app
from tests.conftest import EXAMPLES

SLUG = "weekly"
HEAD = "---\ntitle: {title}\nnumber: {n}\npublication: 政策周报\n---\n\n"
BODY = (
    "本期导语。\n\n## 一、政策法规\n\n### 1. {item}\n\n"
    "::: meta\n发布机构：示例部\n:::\n\n"
    "关于推进公共数据资源开发利用的实施意见，第{n}号。\n"
)


def _add(tmp: Path, n: int, status: str, *, title: str = "", item: str = "") -> int:
    path = tmp / f"issue-{n}.md"
    path.write_text(
        HEAD.format(title=title or f"政策周报第{n}期", n=n)
        + BODY.format(item=item or f"第{n}期条目", n=n),
        encoding="utf-8",
    )
    with session_scope() as s:
        issue, _ = create_issue(s, path, publication_slug=SLUG)
        render_issue(s, issue.id)  # what a console preview does
        s.execute(update(Issue).where(Issue.id == issue.id).values(status=status))
        return issue.id


@pytest.fixture
def client(any_db: Settings) -> TestClient:
    return TestClient(create_app(), base_url="https://testserver", follow_redirects=False)


def test_index_lists_sent_issues_newest_first_never_drafts(
    any_db: Settings, client: TestClient, tmp_path: Path
) -> None:
    _add(tmp_path, 1, "sent")
    _add(tmp_path, 2, "draft", title="草稿不可见")
    _add(tmp_path, 3, "sent")
    _add(tmp_path, 4, "approved", title="已批未发")
    _add(tmp_path, 5, "in_review", title="审核中")
    r = client.get(f"/archive/{SLUG}/")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "<script" not in r.text
    assert "草稿不可见" not in r.text and "已批未发" not in r.text and "审核中" not in r.text
    assert r.text.index("政策周报第3期") < r.text.index("政策周报第1期")
    assert f'href="https://news.example.org/archive/{SLUG}/3"' in r.text
    assert "往期存档" in r.text
    hant = client.get(f"/archive/{SLUG}/?v=zh-Hant")
    assert hant.status_code == 200 and "往期存檔" in hant.text
    assert f"/archive/{SLUG}/3?v=zh-Hant" in hant.text
    for path in (f"/archive/{SLUG}/search?q=草稿", f"/archive/{SLUG}/search?q=已批未发"):
        page = client.get(path)
        assert page.status_code == 200 and "/archive/weekly/2" not in page.text
        assert "/archive/weekly/4" not in page.text
    assert client.get("/archive/nope/").status_code == 404


def test_pagination_bounds(any_db: Settings, client: TestClient, tmp_path: Path) -> None:
    for n in range(1, 23):
        _add(tmp_path, n, "sent")
    first = client.get(f"/archive/{SLUG}/")
    assert first.status_code == 200
    assert first.text.count('<li><a href="') == 20
    assert "第 1 / 2 页" in first.text and 'rel="next"' in first.text
    second = client.get(f"/archive/{SLUG}/?page=2")
    assert second.status_code == 200 and second.text.count('<li><a href="') == 2
    assert "政策周报第1期" in second.text and 'rel="prev"' in second.text
    for bad in ("0", "-1", "abc", "1e3", "99999999999999999999", "１", " 1"):
        r = client.get(f"/archive/{SLUG}/", params={"page": bad})
        assert r.status_code == 400, bad
        assert "页码无效" in r.text and "invalid page" in r.text and "Traceback" not in r.text
    r = client.get(f"/archive/{SLUG}/?page=3")
    assert r.status_code == 404 and "no such page" in r.text


def test_search_finds_a_phrase_from_the_middle_of_an_item(
    any_db: Settings, client: TestClient
) -> None:
    with session_scope() as s:
        issue, _ = create_issue(s, EXAMPLES / "issue-sample.md", publication_slug=SLUG)
        render_issue(s, issue.id)
        issue.status = "sent"
        number = issue.number
    r = client.get(f"/archive/{SLUG}/search", params={"q": "原始数据不出域"})
    assert r.status_code == 200
    links = re.findall(rf'href="(https://news\.example\.org/archive/{SLUG}/{number}[^"]*)"', r.text)
    assert any("#" in u for u in links), links  # an item permalink, not only the issue
    anchor = next(u for u in links if "#" in u).split("#", 1)[1]
    page = client.get(f"/archive/{SLUG}/{number}")
    assert f'id="{anchor}"' in page.text  # the permalink lands on the item
    hant = client.get(f"/archive/{SLUG}/search", params={"q": "原始數據不出域", "v": "zh-Hant"})
    assert hant.status_code == 200 and f"/{number}?v=zh-Hant#" in hant.text
    # the issue is named in Traditional on the Traditional page, in Simplified on the other
    assert "《營商環境與數字經濟政策週報》" in hant.text, hant.text[-2000:]
    assert "《营商环境与数字经济政策周报》" in r.text
    assert "0 条" not in r.text


def test_titles_are_escaped_everywhere(
    any_db: Settings, client: TestClient, tmp_path: Path
) -> None:
    evil = '<script>alert(1)</script>"><svg onload=alert(2)>'
    _add(tmp_path, 1, "sent", title=f"周报{evil}", item=f"条目{evil}")
    for path in (
        f"/archive/{SLUG}/",
        f"/archive/{SLUG}/search?q=周报",
        f"/archive/{SLUG}/search?q=条目",
    ):
        r = client.get(path)
        assert r.status_code == 200
        assert "<script>alert" not in r.text and "<svg" not in r.text, path
        assert "&lt;script&gt;" in r.text, path
    r = client.get(f"/archive/{SLUG}/search", params={"q": evil})
    assert r.status_code == 200 and "<svg onload" not in r.text and "&lt;svg" in r.text
    for kind in ("atom", "rss"):
        feed = client.get(f"/archive/{SLUG}/feed.{kind}?full=1")
        ET.fromstring(feed.content)  # still well-formed XML
        assert b"<script>" not in feed.content


@pytest.mark.parametrize(
    "q",
    [
        "%",
        "_",
        "\\",
        "%_%",
        "' OR 1=1 --",
        '"; DROP TABLE issue; --',
        "\x00",
        "政" * 5000,
        "\u202e\u2028\ud7ff",
        "％",
    ],
)
def test_hostile_search_input_is_a_200(
    any_db: Settings, client: TestClient, tmp_path: Path, q: str
) -> None:
    _add(tmp_path, 1, "sent")
    r = client.get(f"/archive/{SLUG}/search", params={"q": q})
    assert r.status_code == 200, r.text[:200]
    if q in ("%", "_", "%_%", "\\"):
        assert "没有找到相关内容" in r.text  # a wildcard is a literal, never "match all"


def test_like_pattern_makes_wildcards_literal() -> None:
    assert like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"


def test_search_never_fails_on_any_unicode(pg_settings: Settings, tmp_path: Path) -> None:
    _add(tmp_path, 1, "sent")
    c = TestClient(create_app(), base_url="https://testserver")

    @settings(max_examples=60, deadline=None)
    @given(q=st.text(max_size=300))
    def check(q: str) -> None:
        r = c.get(f"/archive/{SLUG}/search", params={"q": q})
        assert r.status_code == 200, (q, r.text[:200])
        assert "Traceback" not in r.text

    check()


def test_feeds_are_valid_and_only_published(
    any_db: Settings, client: TestClient, tmp_path: Path
) -> None:
    _add(tmp_path, 1, "sent")
    _add(tmp_path, 2, "draft", title="草稿不可见")
    _add(tmp_path, 3, "sent")
    with session_scope() as s:
        assert s.query(Publication).count() == 1
    for kind, version in (("atom", "atom10"), ("rss", "rss20")):
        r = client.get(f"/archive/{SLUG}/feed.{kind}")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(f"application/{kind}+xml")
        parsed = feedparser.parse(r.content)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.version == version
        titles = [e.title for e in parsed.entries]
        assert titles[0].startswith("第3期") and titles[1].startswith("第1期")
        assert len(titles) == 2 and "草稿" not in r.text
        for e in parsed.entries:
            assert e.link.startswith("https://news.example.org/archive/weekly/")
        assert "关于推进公共数据" not in r.text  # summary by default, no full text
        full = client.get(f"/archive/{SLUG}/feed.{kind}?full=1")
        fp = feedparser.parse(full.content)
        assert not fp.bozo and "关于推进公共数据" in fp.entries[0].content[0].value
        hrefs = re.findall(r'href="([^"]*)"', fp.entries[0].content[0].value)
        assert all(h.startswith(("https://", "http://")) for h in hrefs), hrefs
        hant = feedparser.parse(client.get(f"/archive/{SLUG}/feed.{kind}?v=zh-Hant&full=1").content)
        assert not hant.bozo and hant.entries[0].link.endswith("?v=zh-Hant")
        assert "關於推進公共數據" in hant.entries[0].content[0].value
    assert client.get("/archive/nope/feed.atom").status_code == 404


def test_feed_links_need_an_http_base_url(
    any_db: Settings, client: TestClient, tmp_path: Path
) -> None:
    from newsletter.core.config import reset_settings

    _add(tmp_path, 1, "sent")
    reset_settings(any_db.model_copy(update={"base_url": "javascript:alert(1)//"}))
    r = client.get(f"/archive/{SLUG}/feed.atom")
    assert r.status_code == 404 and b"javascript" not in r.content
    reset_settings(any_db)


def test_sitemap_and_open_graph(any_db: Settings, client: TestClient, tmp_path: Path) -> None:
    _add(tmp_path, 1, "sent", title="周报<&>")
    _add(tmp_path, 2, "draft")
    r = client.get(f"/archive/{SLUG}/sitemap.xml")
    assert r.status_code == 200
    root = ET.fromstring(r.content)
    locs = [e.text for e in root.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert f"https://news.example.org/archive/{SLUG}/1" in locs
    assert f"https://news.example.org/archive/{SLUG}/1?v=zh-Hant" in locs
    assert not any(u and u.endswith("/2") for u in locs)  # no draft
    page = client.get(f"/archive/{SLUG}/1")
    assert '<meta property="og:title" content="周报&lt;&amp;&gt;' in page.text
    assert (
        f'<meta property="og:url" content="https://news.example.org/archive/{SLUG}/1">' in page.text
    )


def test_search_ignores_latin_case_in_titles_and_text(
    any_db: Settings, client: TestClient, tmp_path: Path
) -> None:
    _add(tmp_path, 1, "sent", item="推进AI治理")
    for q in ("ai治理", "AI治理", "公共数据资源开发利用"):
        r = client.get(f"/archive/{SLUG}/search", params={"q": q})
        assert r.status_code == 200 and f"/archive/{SLUG}/1#" in r.text, q
    r = client.get(f"/archive/{SLUG}/search", params={"q": "ai", "page": "2"})
    assert r.status_code == 404 and "no such page" in r.text


def test_a_phrase_in_every_issue_is_paged_newest_first_past_the_count_cap(
    any_db: Settings, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the cap the total says "more than", and the pages are the same as an
    exact search would give (newest issue first, then item order)."""
    import newsletter.issues.archive as archive

    for n in range(1, 26):
        _add(tmp_path, n, "sent" if n != 24 else "draft", item=f"公共数据条目{n}")
    with session_scope() as s:
        pub = s.query(Publication).filter_by(slug=SLUG).one()
        exact, total = archive.search(s, pub, "zh-Hans", "公共数据资源", per_page=100)
    assert total == 24 and [e.number for e in exact] == [n for n in range(25, 0, -1) if n != 24]
    monkeypatch.setattr(archive, "COUNT_CAP", 5)
    with session_scope() as s:
        pub = s.query(Publication).filter_by(slug=SLUG).one()
        got = []
        for page in range(1, 6):
            hits, capped = archive.search(s, pub, "zh-Hans", "公共数据资源", page=page, per_page=7)
            assert capped == 6
            got += hits
    assert [(e.number, e.anchor) for e in got] == [(e.number, e.anchor) for e in exact]
    r = client.get(f"/archive/{SLUG}/search", params={"q": "公共数据资源"})
    assert r.status_code == 200 and "5+ 条" in r.text
