"""The public archive index, its search and its feeds.

* ``GET /archive/{slug}/``: published issues, newest first, paged (``?page=``);
* ``GET /archive/{slug}/search?q=``: issues and items containing ``q``; each item
  links to its permalink ``/archive/{slug}/{n}#{anchor}``;
* ``GET /archive/{slug}/feed.atom`` and ``/feed.rss``: Atom 1.0 and RSS 2.0
  (feedgen), a summary by default, the full text with ``?full=1``.

Every page takes ``?v=zh-Hant``.  Only published issues (approved and sent,
see :mod:`newsletter.issues.archive`) appear anywhere here, for anyone: a console user
previews a draft on its own page, never in the index.  Pages carry no script
(the CSP forbids inline script) and Jinja escapes every value.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy import select

from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.safety.urlpolicy import safe_url
from newsletter.issues import archive as archive_search_module
from newsletter.issues.archive import MAX_QUERY, PER_PAGE, PUBLISHED, published_issues, search
from newsletter.models import Issue, IssueSeal, Publication, Rendition
from newsletter.web.public import _env

__all__ = ["router"]

router = APIRouter()

#: The highest page number accepted (beyond it: 400, never a huge OFFSET).
MAX_PAGE = 10_000

L = {
    "zh-Hans": {
        "archive": "往期存档",
        "search": "搜索",
        "search_ph": "搜索标题、政策、机构……",
        "results": "“{q}”的搜索结果：{n} 条",
        "none": "没有找到相关内容。",
        "empty": "暂无已发布的期刊。",
        "issue_no": "第{n}期",
        "prev": "上一页",
        "next": "下一页",
        "page": "第 {p} / {pages} 页",
        "switch": "繁體",
        "feeds": "订阅源",
        "subscribe": "邮件订阅",
        "in_issue": "见",
    },
    "zh-Hant": {
        "archive": "往期存檔",
        "search": "搜尋",
        "search_ph": "搜尋標題、政策、機構……",
        "results": "「{q}」的搜尋結果：{n} 條",
        "none": "沒有找到相關內容。",
        "empty": "暫無已發佈的期刊。",
        "issue_no": "第{n}期",
        "prev": "上一頁",
        "next": "下一頁",
        "page": "第 {p} / {pages} 頁",
        "switch": "简体",
        "feeds": "訂閱源",
        "subscribe": "郵件訂閱",
        "in_issue": "見",
    },
}

_HEADERS = {"Cache-Control": "public, max-age=300"}


def _variant(v: str | None) -> str:
    return "zh-Hant" if v == "zh-Hant" else "zh-Hans"


def _bad(text: str, status: int = 400) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status)


def _page_number(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return 1
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        return None
    n = int(raw)
    return n if 1 <= n <= MAX_PAGE else None


def _clean_query(q: str) -> str:
    """The query without control, format or surrogate characters (PostgreSQL refuses NUL)."""
    return "".join(c if c.isprintable() else " " for c in q).strip()[:MAX_QUERY]


def _base() -> str | None:
    """The public base URL, if it is an http(s) URL (links in feeds must be absolute)."""
    return safe_url(get_settings().base_url.rstrip("/"))


def _publication(slug: str) -> Publication | None:
    if len(slug) > 64:
        return None
    with session_scope() as s:
        pub = s.scalar(select(Publication).where(Publication.slug == slug))
        if pub is not None:
            s.expunge(pub)
        return pub


def _url(base: str, slug: str, variant: str, path: str = "", **params: object) -> str:
    q = {k: v for k, v in params.items() if v not in (None, "", 1)}
    if variant == "zh-Hant":
        q["v"] = variant
    tail = f"?{urlencode(q)}" if q else ""
    return f"{base}/archive/{slug}/{path}{tail}"


def _issue_url(base: str, slug: str, number: int, variant: str, anchor: str = "") -> str:
    url = f"{base}/archive/{slug}/{number}"
    if variant == "zh-Hant":
        url += "?v=zh-Hant"
    return f"{url}#{anchor}" if anchor else url


def _render(variant: str, status: int = 200, **kw: Any) -> HTMLResponse:
    html = _env.get_template("archive.html").render(
        L=L[variant], variant=variant, count_cap=archive_search_module.COUNT_CAP, **kw
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


_NOT_FOUND = "本刊不存在 / publication not found"
_BAD_PAGE = "页码无效（应为 1 到 10000 的整数）/ invalid page (an integer from 1 to 10000)"
_NO_PAGE = "没有这一页 / no such page"


@router.get("/archive/{slug}", response_class=HTMLResponse, include_in_schema=False)
@router.get("/archive/{slug}/", response_class=HTMLResponse)
def archive_index(
    slug: str, request: Request, v: str | None = None, page: str | None = None
) -> Response:
    return _listing(slug, v, page, "index", "")


@router.get("/archive/{slug}/search", response_class=HTMLResponse)
def archive_search(
    slug: str, v: str | None = None, q: str = "", page: str | None = None
) -> Response:
    return _listing(slug, v, page, "search", _clean_query(q))


def _listing(slug: str, v: str | None, page: str | None, mode: str, query: str) -> Response:
    """The index (``mode`` "index") or the search page: the same checks, paging and links.

    Only the rows differ: published issues, or the items that contain ``query``
    (each linking to its anchor).  The search page's canonical and language
    links point at its first page; the index's keep the page number.
    """
    variant = _variant(v)
    n = _page_number(page)
    if n is None:
        return _bad(_BAD_PAGE)
    pub = _publication(slug)
    base = _base()
    if pub is None or base is None:
        return _bad(_NOT_FOUND, 404)
    with session_scope() as s:
        if mode == "search":
            hits, total = search(s, pub, variant, query, page=n)
            rows: dict[str, Any] = {
                "hits": [
                    {"h": h, "url": _issue_url(base, slug, h.number, variant, h.anchor)}
                    for h in hits
                ]
            }
        else:
            issues, total = published_issues(s, pub, variant, page=n)
            rows = {
                "issues": [
                    {"i": i, "url": _issue_url(base, slug, i.number, variant)} for i in issues
                ]
            }
    pages = max(1, -(-total // PER_PAGE))
    if n > pages:
        return _bad(_NO_PAGE, 404)
    path, params = ("search", {"q": query}) if mode == "search" else ("", {})
    here = {} if mode == "search" else {"page": n}
    other = "zh-Hans" if variant == "zh-Hant" else "zh-Hant"
    return _render(
        variant,
        pub=pub,
        mode=mode,
        q=query,
        total=total,
        page=n,
        pages=pages,
        prev_url=_url(base, slug, variant, path, **params, page=n - 1) if n > 1 else None,
        next_url=_url(base, slug, variant, path, **params, page=n + 1) if n < pages else None,
        other_url=_url(base, slug, other, path, **params, **here),
        canonical=_url(base, slug, variant, path, **params, **here),
        atom=_url(base, slug, variant, "feed.atom"),
        rss=_url(base, slug, variant, "feed.rss"),
        subscribe=f"{base}/subscribe/{slug}",
        **rows,
    )


_MAIN = re.compile(r"<main>(.*)</main>", re.S)


def _full_text(body: str, issue_url: str) -> str:
    """The ``<main>`` of an issue's web page, with in-page anchors made absolute."""
    m = _MAIN.search(body)
    html = m.group(1) if m else ""
    return html.replace('href="#', f'href="{issue_url.split("#")[0]}#')


def _feed(slug: str, kind: str, v: str | None, full: str | None) -> Response:
    from feedgen.feed import FeedGenerator

    variant = _variant(v)
    pub = _publication(slug)
    base = _base()
    if pub is None or base is None:
        return _bad(_NOT_FOUND, 404)
    with_full = full in ("1", "true", "yes")
    with session_scope() as s:
        issues, _total = published_issues(s, pub, variant, page=1, per_page=PER_PAGE)
        bodies: dict[int, str] = {}
        if with_full and issues:
            bodies = {
                n: b
                for n, b in s.execute(
                    select(Issue.number, Rendition.body)
                    .join(Rendition, Rendition.issue_id == Issue.id)
                    .outerjoin(
                        IssueSeal,
                        (IssueSeal.issue_id == Issue.id)
                        & (IssueSeal.version == Issue.sealed_version),
                    )
                    .where(
                        Issue.publication_id == pub.id,
                        Issue.status == PUBLISHED,
                        Issue.number.in_([i.number for i in issues]),
                        Rendition.variant == variant,
                        Rendition.output == "web",
                        # a sealed issue: only the page rendered from its sealed version
                        (Issue.sealed_version.is_(None))
                        | (Rendition.source_hash == IssueSeal.digest),
                    )
                ).all()
            }
    home = _url(base, slug, variant)
    me = _url(base, slug, variant, f"feed.{kind}", full="1" if with_full else None)
    fg = FeedGenerator()
    fg.id(home)
    fg.title(pub.name)
    fg.link(href=home, rel="alternate")
    fg.link(href=me, rel="self")
    fg.language("zh-TW" if variant == "zh-Hant" else "zh-CN")
    fg.description(f"{pub.name} · {L[variant]['archive']}")
    fg.subtitle(f"{pub.name} · {L[variant]['archive']}")
    fg.author(name=pub.from_name or pub.name)
    if issues:
        fg.updated(max(i.published_at for i in issues))
    for i in reversed(issues):  # feedgen prepends: the newest ends up first
        url = _issue_url(base, slug, i.number, variant)
        fe = fg.add_entry()
        fe.id(url)
        fe.guid(url, permalink=True)
        fe.title(f"{L[variant]['issue_no'].format(n=i.number)} · {i.title}")
        fe.link(href=url)
        fe.published(i.published_at)
        fe.updated(i.published_at)
        fe.summary(i.summary or i.title)
        fe.description(i.summary or i.title)
        if with_full and i.number in bodies:
            fe.content(_full_text(bodies[i.number], url), type="CDATA" if kind == "rss" else "html")
    if kind == "atom":
        return Response(
            fg.atom_str(pretty=True),
            media_type="application/atom+xml; charset=utf-8",
            headers=_HEADERS,
        )
    return Response(
        fg.rss_str(pretty=True), media_type="application/rss+xml; charset=utf-8", headers=_HEADERS
    )


@router.get("/archive/{slug}/sitemap.xml")
def sitemap(slug: str) -> Response:
    """The published issues of ``slug`` in both variants (sitemaps.org 0.9)."""
    from xml.sax.saxutils import escape

    pub = _publication(slug)
    base = _base()
    if pub is None or base is None:
        return _bad(_NOT_FOUND, 404)
    with session_scope() as s:
        issues, _total = published_issues(s, pub, "zh-Hans", page=1, per_page=MAX_SITEMAP)
    urls = [_url(base, slug, "zh-Hans"), _url(base, slug, "zh-Hant")]
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
    ]
    lines += [f"<url><loc>{escape(u)}</loc></url>" for u in urls]
    for i in issues:
        day = i.published_at.date().isoformat()
        for v in ("zh-Hans", "zh-Hant"):
            loc = escape(_issue_url(base, slug, i.number, v))
            lines.append(f"<url><loc>{loc}</loc><lastmod>{day}</lastmod></url>")
    lines.append("</urlset>")
    return Response("\n".join(lines) + "\n", media_type="application/xml", headers=_HEADERS)


#: A sitemap holds at most 50,000 URLs: two per issue.
MAX_SITEMAP = 20_000


@router.get("/archive/{slug}/feed.atom")
def feed_atom(slug: str, v: str | None = None, full: str | None = None) -> Response:
    return _feed(slug, "atom", v, full)


@router.get("/archive/{slug}/feed.rss")
def feed_rss(slug: str, v: str | None = None, full: str | None = None) -> Response:
    return _feed(slug, "rss", v, full)
