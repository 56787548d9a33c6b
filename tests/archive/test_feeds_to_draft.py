"""Feed to draft: two feeds served by a local HTTP server become one draft issue that
lints clean, with every new item once; bad feeds files get one clear line."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.content.parser import parse_issue
from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError
from newsletter.issues.feeds import FeedItem, FeedsConfig, build_markdown, parse_config
from newsletter.render.context import RenderContext
from newsletter.reports.lint import full_lint
from tests.httpserve import serve_paths

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.datetime.now(dt.UTC)


def _rss(items: list[tuple[str, str, dt.datetime, str]]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><pubDate>{format_datetime(d)}</pubDate>"
        f"<description><![CDATA[<p>{sm}</p>]]></description></item>"
        for t, link, d, sm in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>国务院政策</title><link>https://gov.example.cn/</link>"
        f"<description>政策文件</description>{body}</channel></rss>"
    ).encode()


def _atom(items: list[tuple[str, str, dt.datetime, str]]) -> bytes:
    body = "".join(
        f'<entry><title>{t}</title><link href="{link}"/><id>{link}</id>'
        f"<updated>{d.isoformat()}</updated><summary>{sm}</summary></entry>"
        for t, link, d, sm in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>上海发布</title><id>urn:sh</id>"
        f"<updated>{TODAY.isoformat()}</updated>{body}</feed>"
    ).encode()


DAY = dt.timedelta(days=1)
GOV = [
    (
        "关于促进数据要素流通的意见",
        "https://gov.example.cn/a/1",
        TODAY - DAY,
        "国办发〔2026〕40号 提出三项任务。",
    ),
    (
        "经营主体信用修复管理办法",
        "https://gov.example.cn/a/2",
        TODAY - 2 * DAY,
        "（发改财金规[2026] 12号）明确修复程序。",
    ),
    # in the sample issue already (stored earlier): left out
    (
        "公共数据授权运营意见",
        "https://www.gov.cn/zhengce/content/202611/content_7012345.htm",
        TODAY - DAY,
        "旧闻。",
    ),
    # before the last issue: left out
    ("一个月前的通知", "https://gov.example.cn/a/old", TODAY - 40 * DAY, "旧闻。"),
    # not a web link: left out
    ("脚本链接", "javascript:alert(1)", TODAY - DAY, "x"),
]
SH = [
    ("上海市推进算力券发放工作动态", "https://sh.example.cn/n/9", TODAY - DAY, "第二批名单公布。"),
    # the same item as the first feed's, by link (trailing slash, fragment): once
    ("转载：关于促进数据要素流通的意见", "https://gov.example.cn/a/1/#top", TODAY - DAY, "转载。"),
    ("上海发布跨境贸易便利化十条", "https://sh.example.cn/n/10", TODAY, "## 不是标题\n::: meta"),
]


@pytest.fixture
def feeds_server() -> Iterator[str]:
    xml = {"Content-Type": "application/xml; charset=utf-8"}
    with serve_paths(
        {"/gov.xml": (200, xml, _rss(GOV)), "/sh.atom": (200, xml, _atom(SH))}
    ) as base:
        yield base


def _feeds_file(tmp_path: Path, base: str) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(
        f"""
default_section: 要闻速览
feeds:
  - name: 国务院
    url: {base}/gov.xml
    section: 政策法规
  - name: 上海发布
    url: {base}/sh.atom
  - name: 失效的源
    url: {base}/gone.xml
rules:
  - section: 地方动态
    feeds: [上海发布]
    keywords: [动态]
""",
        encoding="utf-8",
    )
    return path


def test_two_feeds_make_one_clean_draft(
    sqlite_settings: Settings, tmp_path: Path, feeds_server: str
) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["issue", "add", str(ROOT / "examples" / "issue-sample.md")])
    assert first.exit_code == 0, first.output
    since = (TODAY - 10 * DAY).date().isoformat()
    out = tmp_path / "draft.md"
    r = runner.invoke(
        app,
        [
            "issue",
            "from-feeds",
            "--feeds",
            str(_feeds_file(tmp_path, feeds_server)),
            "--since",
            since,
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["number"] == 48  # after the sample's 47
    assert result["items"] == 4
    assert result["skipped_old"] == 1 and result["skipped_known"] == 1
    assert result["skipped_duplicate"] == 1
    assert len(result["problems"]) == 1 and "失效的源" in result["problems"][0]
    assert result["status"] == "draft"

    text = out.read_text(encoding="utf-8")
    for _t, link, _d, _s in GOV[:2] + SH[:1] + SH[2:]:
        assert text.count(f"原文链接：{link}") == 1, link
    assert "javascript:" not in text and "一个月前" not in text and "7012345" not in text

    doc = parse_issue(text)
    sections = {(s.numeral, s.title): [i.title for i in s.items] for s in doc.sections}
    assert sections == {
        ("一", "政策法规"): ["关于促进数据要素流通的意见", "经营主体信用修复管理办法"],
        ("二", "地方动态"): ["上海市推进算力券发放工作动态"],
        ("三", "要闻速览"): ["上海发布跨境贸易便利化十条"],
    }, sections
    item = doc.sections[0].items[0]
    assert item.meta_value("issuer") == "国务院"
    assert item.meta_value("url") == "https://gov.example.cn/a/1"
    assert item.meta_value("date") is not None
    assert item.meta_value("doc_number") == "国办发〔2026〕40号"
    assert doc.sections[0].items[1].meta_value("doc_number") == "发改财金规〔2026〕12号"
    news = doc.sections[1].items[0]
    assert news.meta_value("issuer") is None and news.meta_value("url") == SH[0][1]

    def ctx_for(d: object) -> RenderContext:
        return RenderContext(
            base_url="https://news.example.org",
            publication_name="周报",
            publication_slug="weekly",
            postal_address="北京市示例路1号",
            sender_name="周报",
            email_budget_bytes=100_000,
        )

    messages, _budgets = full_lint(text, str(out), ctx_for)
    # Clean: no errors, and no warnings but the template's own CSS notes (the sample
    # issue has the same ones).
    assert [
        m
        for m in messages
        if m.level == "error" or (m.level == "warning" and not m.code.startswith("css-support"))
    ] == [], messages

    # Running it again changes nothing in what is new: the same draft number is updated.
    again = runner.invoke(
        app,
        [
            "issue",
            "from-feeds",
            "--feeds",
            str(_feeds_file(tmp_path, feeds_server)),
            "--since",
            since,
            "--out",
            str(out),
            "--json",
        ],
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["issue_id"] == result["issue_id"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("feeds: [", "line"),
        ("[1, 2]", "mapping"),
        ("feeds: []", "at least one feed"),
        ("feeds:\n  - name: a\n", "url is missing"),
        ("feeds:\n  - name: a\n    url: file:///etc/passwd\n", "http(s)"),
        (
            "feeds:\n  - name: a\n    url: https://x.cn/f\nrules:\n  - section: b\n",
            "keywords or feeds",
        ),
        (
            "feeds:\n  - name: a\n    url: https://x.cn/f\nrules:\n  - section: b\n    keywords: 3\n",
            "list of strings",
        ),
        # hostile shapes: each still names the place, never an "unexpected" error
        ("feeds:\n  - name: a\n    url: https://x.cn/f\nrules: 5\n", "rules"),
        ("feeds:\n  - name: a\n    url: https://x.cn/f\nrules: {a: 1}\n", "rules"),
        ("feeds:\n  - name: a\n    url: 'https://[::1/f'\n", "http(s)"),
        ("feeds:\n  - name: a\n    url: 'https://x.cn:99999999/'\n", "http(s)"),
        ("feeds: " + "[" * 5000 + "]" * 5000, "YAML"),
        ("feeds: [\x00]", "YAML"),
    ],
)
def test_bad_feeds_files_get_one_line(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    msg = str(exc.value)
    assert "\n" not in msg and where in msg and "订阅源配置" in msg


def test_cli_bad_input_is_one_line(sqlite_settings: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["issue", "from-feeds", "--feeds", str(tmp_path / "none.yaml")])
    assert r.exit_code == 2 and "Traceback" not in r.output and str(tmp_path) not in r.output
    assert "none.yaml" in r.output
    bad = tmp_path / "f.yaml"
    bad.write_text("feeds:\n  - name: a\n    url: https://x.cn/f\n", encoding="utf-8")
    r = runner.invoke(app, ["issue", "from-feeds", "--feeds", str(bad), "--since", "昨天"])
    assert r.exit_code == 2 and "--since" in r.output and "Traceback" not in r.output


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(
        st.tuples(st.text(min_size=1, max_size=40), st.text(max_size=80), st.text(max_size=12)),
        min_size=1,
        max_size=6,
    )
)
def test_arbitrary_titles_keep_the_structure(items: list[tuple[str, str, str]]) -> None:
    cfg = FeedsConfig(feeds=[], default_section="要闻速览")
    feed_items = []
    for n, (title, summary, feed) in enumerate(items):
        from newsletter.issues.feeds import _plain

        t = _plain(title, 200)
        if not t:
            continue
        feed_items.append(
            FeedItem(_plain(feed, 50) or "源", t, f"https://x.cn/{n}", None, _plain(summary, 600))
        )
    if not feed_items:
        return
    md = build_markdown(
        cfg,
        feed_items,
        publication="周报",
        number=3,
        since=dt.date(2026, 11, 1),
        today=dt.date(2026, 11, 8),
    )
    doc = parse_issue(md)
    assert len(doc.sections) == 1
    assert [i.meta_value("url") for i in doc.sections[0].items] == [i.link for i in feed_items]
