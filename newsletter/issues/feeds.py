"""Feed to draft: the items that official sites published since the last issue, as a
draft issue in the source format, for an editor to finish.

The editor lists the source feeds (RSS or Atom) in a YAML file
(``NEWSLETTER_FEEDS_FILE``, or ``--feeds``)::

    default_section: 二、要闻速览
    feeds:
      - name: 国务院                      # becomes each item's 发布机构
        url: https://www.gov.cn/zhengce/rss.xml
        section: 一、政策法规              # where this feed's items go, unless a rule says otherwise
    rules:                                # first match wins
      - section: 一、政策法规
        keywords: [办法, 条例, 意见, 通知]   # in the item's title
      - section: 三、地方动态
        feeds: [上海发布]

Every item becomes ``### N. title`` with a ``::: meta`` block (发布机构, 发布日期,
原文链接) and the feed's own summary as a paragraph (or a placeholder), so the
draft lints clean and the analysis is left to the editor. Each new item appears
once: duplicates across feeds (by link) collapse, and links that a stored issue of
the publication already carries are left out.

Feeds are read with httpx (15 s, 5 MB at most, up to 5 redirects) and parsed by
feedparser. A feed on a public address may not redirect to an internal one
(loopback, private, link-local such as a cloud metadata address): each hop is
checked, and such a feed is reported, not read. A feed the operator listed on an
internal address may redirect within. A feed that cannot be read or parsed is named
in the report and the others still make the draft.
"""

from __future__ import annotations

import calendar
import datetime as dt
import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.core import clock
from newsletter.core.errors import ConfigError
from newsletter.core.safety.headers import clean_text
from newsletter.core.safety.urlpolicy import is_allowed, resolves_public
from newsletter.models import Issue, Publication

__all__ = [
    "FEEDS_ACTOR",
    "FeedItem",
    "FeedsConfig",
    "draft_from_feeds",
    "load_config",
    "read_feeds",
]

MAX_BYTES = 5 * 1024 * 1024
TIMEOUT = 15.0
MAX_ITEMS = 200
#: Who the draft issues are stored by (``issue.created_by``).
FEEDS_ACTOR = "feeds"
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_BREAKS = re.compile(r"[\t\r\n\x0b\x0c\x85\u2028\u2029]")
_NUMERALS = "一二三四五六七八九十"


@dataclass(frozen=True)
class Feed:
    name: str
    url: str
    section: str = ""


@dataclass(frozen=True)
class Rule:
    section: str
    keywords: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()

    def matches(self, item: FeedItem) -> bool:
        if self.feeds and item.feed not in self.feeds:
            return False
        if self.keywords and not any(k in item.title for k in self.keywords):
            return False
        return bool(self.feeds or self.keywords)


@dataclass
class FeedsConfig:
    feeds: list[Feed]
    rules: list[Rule] = field(default_factory=list)
    default_section: str = "要闻速览"

    def section_of(self, item: FeedItem) -> str:
        for rule in self.rules:
            if rule.matches(item):
                return rule.section
        return item.section or self.default_section


@dataclass
class FeedItem:
    feed: str
    title: str
    link: str
    published: dt.date | None
    summary: str
    section: str = ""


def _problem(where: str, zh: str, en: str) -> ConfigError:
    return ConfigError(f"订阅源配置 {where}：{zh} / feeds file {where}: {en}")


def _text(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not clean_text(value).strip():
        raise _problem(where, f"缺少 {what}", f"{what} is missing")
    return clean_text(value).strip()[:200]


def _strings(value: Any, where: str, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _problem(where, f"{what} 应为文字列表", f"{what} must be a list of strings")
    return tuple(clean_text(v).strip() for v in value if clean_text(v).strip())


def _web_address(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def parse_config(text: str) -> FeedsConfig:
    """The feeds file, or one clear ``ConfigError`` naming where it is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f"第 {line + 1} 行 (line {line + 1})" if line is not None else "YAML"
        raise _problem(where, "不是有效的 YAML", "not valid YAML") from None
    except RecursionError:  # thousands of nested brackets
        raise _problem("YAML", "嵌套过深", "not valid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise _problem("", "应为一个映射（feeds、rules）", "must be a mapping (feeds, rules)")
    raw_feeds = data.get("feeds")
    if not isinstance(raw_feeds, list) or not raw_feeds:
        raise _problem("feeds", "至少需要一个订阅源", "at least one feed is needed")
    feeds = []
    for i, f in enumerate(raw_feeds, 1):
        where = f"feeds[{i}]"
        if not isinstance(f, dict):
            raise _problem(where, "应为映射（name、url）", "must be a mapping (name, url)")
        url = _text(f.get("url"), where, "url")
        if not _web_address(url):
            raise _problem(where, "url 须为 http(s) 地址", "url must be an http(s) address")
        feeds.append(
            Feed(
                _text(f.get("name"), where, "name"),
                url,
                _text(f["section"], where, "section") if f.get("section") else "",
            )
        )
    rules = []
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        raise _problem("rules", "应为列表", "must be a list")
    for i, r in enumerate(raw_rules, 1):
        where = f"rules[{i}]"
        if not isinstance(r, dict):
            raise _problem(
                where,
                "应为映射（section、keywords、feeds）",
                "must be a mapping (section, keywords, feeds)",
            )
        rule = Rule(
            _text(r.get("section"), where, "section"),
            _strings(r.get("keywords"), where, "keywords"),
            _strings(r.get("feeds"), where, "feeds"),
        )
        if not rule.keywords and not rule.feeds:
            raise _problem(where, "需要 keywords 或 feeds", "needs keywords or feeds")
        rules.append(rule)
    default = data.get("default_section")
    return FeedsConfig(
        feeds,
        rules,
        _text(default, "default_section", "default_section") if default else "要闻速览",
    )


def load_config(path: Path) -> FeedsConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ConfigError(
            f"无法读取订阅源配置 {path.name} / cannot read the feeds file {path.name}"
        ) from None
    return parse_config(text)


MAX_REDIRECTS = 5


class FeedRefused(ValueError):
    """A feed that is not read, and why (shown in the report)."""


def _public(host: str) -> bool:
    """Whether every address ``host`` resolves to is a public one."""
    return resolves_public(host) is True


def _fetch(url: str) -> bytes:
    """The feed's bytes. A feed on a public address may only lead to public addresses:
    each hop is resolved once, checked and connected to the address checked
    (:class:`~newsletter.core.safety.pinned.PinnedTransport`), so a name that answers
    the check with a public address and the connection with an internal one is
    refused. A feed the operator listed on an internal address may stay inside."""
    from newsletter.core.safety.pinned import AddressRefused, pinned_client

    origin_public = _public(urlsplit(url).hostname or "")
    current = url
    client = pinned_client(
        allow_private=not origin_public,
        timeout=TIMEOUT,
        follow_redirects=False,
        headers={"User-Agent": "newsletter-feed-reader/1"},
    )
    with client:
        for hop in range(MAX_REDIRECTS + 1):
            try:
                with client.stream("GET", current) as resp:
                    if resp.is_redirect:
                        target = urljoin(current, resp.headers.get("location", ""))
                        parts = urlsplit(target)
                        if parts.scheme not in ("http", "https") or not parts.hostname:
                            raise FeedRefused(
                                "重定向到非网页地址 / redirected to a non-web address"
                            )
                        current = target
                        continue
                    resp.raise_for_status()
                    chunks, size = [], 0
                    for chunk in resp.iter_bytes():
                        size += len(chunk)
                        if size > MAX_BYTES:
                            raise FeedRefused("超过 5 MB / larger than 5 MB")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except AddressRefused as exc:
                if not exc.resolved:
                    raise FeedRefused(f"无法解析 / does not resolve ({current})") from None
                if hop:
                    raise FeedRefused(
                        "重定向到内部地址，已拒绝 / redirected to an internal address; refused"
                    ) from None
                raise FeedRefused(
                    "解析到内部地址，已拒绝 / resolves to an internal address; refused"
                ) from None
    raise FeedRefused("重定向过多 / too many redirects")


def _plain(value: str, limit: int) -> str:
    text = html.unescape(_TAG.sub(" ", value or ""))
    return _SPACE.sub(" ", clean_text(text)).strip()[:limit]


def _link(value: str) -> str:
    """A feed's link as one token: tabs and line breaks dropped (as browsers drop them),
    other spaces percent-encoded, so that it cannot carry Markdown onto another line."""
    value = _BREAKS.sub("", value.strip())
    return _SPACE.sub(lambda m: quote(m.group(), safe=""), value)


def _date(entry: Any) -> dt.date | None:
    for key in ("published_parsed", "updated_parsed"):
        value = entry.get(key)
        if value:
            try:
                return dt.datetime.fromtimestamp(calendar.timegm(value), dt.UTC).date()
            except (ValueError, OverflowError, OSError, TypeError):
                return None  # "0000-00-00", year 10000: no date rather than no draft
    return None


def read_feeds(
    cfg: FeedsConfig, fetch: Callable[[str], bytes] = _fetch
) -> tuple[list[FeedItem], list[str]]:
    """Every item of every feed (in feed order), and a line per feed that failed."""
    import feedparser

    items: list[FeedItem] = []
    problems: list[str] = []
    for feed in cfg.feeds:
        try:
            parsed = feedparser.parse(fetch(feed.url))
        except Exception as exc:  # one feed's failure must not stop the others
            why = str(exc) if isinstance(exc, FeedRefused) else exc.__class__.__name__
            problems.append(
                f"订阅源 {feed.name} 无法读取 / feed {feed.name} could not be read ({why})"
            )
            continue
        if parsed.get("bozo") and not parsed.entries:
            problems.append(f"订阅源 {feed.name} 无法解析 / feed {feed.name} could not be parsed")
            continue
        for entry in parsed.entries[:MAX_ITEMS]:
            title = _plain(entry.get("title", ""), 200)
            link = _link(entry.get("link") or "")
            if not title or not link or not is_allowed(link):
                continue
            items.append(
                FeedItem(
                    feed.name,
                    title,
                    link,
                    _date(entry),
                    _plain(entry.get("summary", ""), 600),
                    feed.section,
                )
            )
    return items, problems


_DOC_NUMBER = re.compile(r"[\u4e00-\u9fff]{1,16}[〔\[【(（]\d{4}[〕\]】)）]\s?\d{1,5}\s?号")


def doc_number(text: str) -> str | None:
    """A document number written in ``text`` (e.g. 国办发〔2026〕38号), normalised to 〔〕."""
    m = _DOC_NUMBER.search(text)
    if m is None:
        return None
    return re.sub(r"[\[【(（](\d{4})[\]】)）]", r"〔\1〕", m.group()).replace(" ", "")


def _link_key(link: str) -> str:
    parts = urlsplit(link.strip())
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def _numeral(n: int) -> str:
    if n <= 10:
        return _NUMERALS[n - 1]
    if n < 20:
        return "十" + _NUMERALS[n - 11]
    return str(n)


def _line(text: str) -> str:
    # One line of Markdown that cannot start a block (heading, quote, list, code fence,
    # link reference or footnote definition) or close a container.
    text = text.replace("\n", " ").replace(":::", "：：：").strip()
    return re.sub(r"^([#>\-*+`~\[]|\d+[.)])", r"\\\1", text)


def build_markdown(
    cfg: FeedsConfig,
    items: Iterable[FeedItem],
    *,
    publication: str,
    number: int,
    since: dt.date,
    today: dt.date,
) -> str:
    """The draft issue in the source format."""
    sections: dict[str, list[FeedItem]] = {}
    for item in items:
        sections.setdefault(cfg.section_of(item), []).append(item)
    period = f"{since.year}年{since.month}月{since.day}日—{today.month}月{today.day}日"
    out = [
        "---",
        f"title: 《{publication}》",
        f"number: {number}",
        f"period: {period}",
        f"date: {today.isoformat()}",
        f"publication: {publication}",
        "---",
        "",
        f"本期汇总了{period}各订阅源发布的{sum(len(v) for v in sections.values())}条信息，"
        "分析待编辑补充。",
        "",
    ]
    for s_no, (name, its) in enumerate(sections.items(), 1):
        heading = (
            name if re.match(r"^[一二三四五六七八九十]+、", name) else f"{_numeral(s_no)}、{name}"
        )
        out += [f"## {_line(heading)}", ""]
        numbers = [doc_number(f"{it.title} {it.summary}") for it in its]
        # A section is a policy section when its items carry document numbers; news
        # items name their source instead of an issuing body.
        policy = any(numbers)
        for i_no, (item, doc_no) in enumerate(zip(its, numbers, strict=True), 1):
            out += [f"### {i_no}. {_line(item.title)}", "", "::: meta"]
            out.append(f"{'发布机构' if policy else '来源'}：{_line(item.feed)}")
            if policy:
                out.append(f"文号：{doc_no or ''}".rstrip("："))
            if item.published:
                d = item.published
                out.append(f"发布日期：{d.year}年{d.month}月{d.day}日")
            out += [f"原文链接：{item.link}", ":::", ""]
            out += [_line(item.summary) if item.summary else "（摘要待编辑补充。）", ""]
    return "\n".join(out)


@dataclass
class Draft:
    markdown: str
    number: int
    items: int
    skipped_old: int
    skipped_known: int
    skipped_duplicate: int
    problems: list[str]


def draft_from_feeds(
    session: Session,
    pub: Publication,
    cfg: FeedsConfig,
    *,
    since: dt.date | None = None,
    today: dt.date | None = None,
    fetch: Callable[[str], bytes] = _fetch,
) -> Draft:
    """The draft for ``pub``: new items since ``since`` (default: the day the newest stored
    issue was created), numbered after the newest issue."""
    today = today or clock.now().date()
    recent = session.execute(
        select(Issue.id, Issue.number, Issue.created_at, Issue.status, Issue.created_by)
        .where(Issue.publication_id == pub.id, Issue.kind == "weekly")
        .order_by(Issue.number.desc())
        .limit(13)
    ).all()
    # A draft that an earlier run made, still untouched by review, is made again
    # (same number), so running this twice gives one draft, not two.
    redo = bool(recent) and recent[0].status == "draft" and recent[0].created_by == FEEDS_ACTOR
    before = recent[1:] if redo else recent
    number = recent[0].number if redo else (recent[0].number if recent else 0) + 1
    if since is None:
        since = before[0].created_at.date() if before else today - dt.timedelta(days=7)
    items, problems = read_feeds(cfg, fetch)
    known: set[str] = set()
    links = re.compile(r"https?://[^\s)<>\"'，。；]+")
    for source in session.scalars(
        select(Issue.source_text).where(Issue.id.in_([r.id for r in before[:12]]))
    ):
        known.update(_link_key(u) for u in links.findall(source or ""))
    seen: set[str] = set()
    fresh: list[FeedItem] = []
    old = dup = already = 0
    for item in items:
        key = _link_key(item.link)
        if item.published is not None and item.published < since:
            old += 1
        elif key in known:
            already += 1
        elif key in seen:
            dup += 1
        else:
            seen.add(key)
            fresh.append(item)
    md = build_markdown(cfg, fresh, publication=pub.name, number=number, since=since, today=today)
    return Draft(md, number, len(fresh), old, already, dup, problems)
