"""``newsletter demo``: the whole pipeline in embedded mode, with no services.

It renders the sample issue, imports the sample subscribers, starts a local
SMTP sink and the web app on free ports, sends one message per subscriber,
fetches some open pixels and a click as readers (and as Apple's privacy proxy)
would, and prints the stats.  Everything lives under ``workdir``.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console

from newsletter.core.config import Settings, get_settings, reset_settings
from newsletter.core.errors import NewsletterError
from newsletter.core.resources import package_path
from newsletter.devtools.sink import SinkHandler, free_port, start_sink
from newsletter.reports.cli import print_stats, reader_text, state_words

__all__ = ["run_demo"]

_PIXEL = re.compile(r'https?://[^"\s]+/o/[^"\s]+\.gif')
_CLICK = re.compile(r'https?://[^"\s]+/c/[^"\s/]+/\d+')

BROWSER_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
APPLE_MPP_UA = "Mozilla/5.0"
SCANNER_UA = "Mozilla/5.0 (compatible; Barracuda Sentinel link protection)"


def _serve_web(port: int) -> threading.Thread:
    import uvicorn

    from newsletter.web.app import create_asgi

    server = uvicorn.Server(
        uvicorn.Config(create_asgi(), host="127.0.0.1", port=port, log_level="warning")
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    return t


def run_demo(
    workdir: Path,
    issue_file: Path | None,
    subscribers: Path | None,
    console: Console,
    *,
    reader_delay: float = 11.0,
) -> dict:
    from newsletter.audience.importer import import_file
    from newsletter.audience.service import get_list
    from newsletter.content.parser import load_issue
    from newsletter.content.variants import to_variant
    from newsletter.core.db import dispose, session_scope, upgrade
    from newsletter.delivery.compiled import clear_cache
    from newsletter.delivery.run import drive_inline
    from newsletter.issues.store import context_for, create_issue, render_issue
    from newsletter.models import Send
    from newsletter.render import render_all, write_outputs
    from newsletter.reports.stats import send_stats

    issue_file = issue_file or package_path("newsletter.devtools", "examples", "issue-sample.md")
    subscribers = subscribers or package_path("newsletter.devtools", "examples", "subscribers.csv")
    for p in (issue_file, subscribers):
        if not p.exists():
            raise NewsletterError(f"找不到文件 / file not found: {p.name}")
    t0 = time.monotonic()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    smtp_port, web_port = free_port(), free_port()
    base = get_settings()
    settings = Settings(
        **{
            **base.model_dump(
                exclude={
                    "var_dir",
                    "database_url",
                    "broker_url",
                    "redis_url",
                    "smtp_host",
                    "smtp_port",
                    "base_url",
                }
            ),
            "var_dir": workdir,
            "database_url": "",
            "broker_url": "",
            "redis_url": "",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "base_url": f"http://127.0.0.1:{web_port}",
        }
    )
    reset_settings(settings)
    dispose()
    clear_cache()
    sink_dir = workdir / "sink"
    ctrl, handler = start_sink(SinkHandler(directory=sink_dir), port=smtp_port)
    try:
        upgrade()
        console.rule(reader_text("1. 期刊 / issue"))
        with session_scope() as s:
            issue, _warnings = create_issue(s, issue_file, actor="demo-editor")
            from newsletter.issues.review import approve

            approve(s, issue, "demo")  # seals the version that goes out
            issue_id = issue.id
            render_issue(s, issue_id)
            from newsletter.models import Publication

            pub = s.get(Publication, issue.publication_id)
            assert pub is not None
            ctx = context_for(pub)
        doc, _ = load_issue(issue_file)
        render_dir = workdir / "render"
        result = render_all(to_variant(doc, "zh-Hans"), ctx)
        write_outputs(result, render_dir)
        title = doc.title if doc.title.startswith("《") else f"《{doc.title}》"
        chars, items = f"{doc.char_count():,}", len(doc.iter_items())
        console.print(
            f"第{doc.number}期{title}："
            + reader_text(f"{chars} 字，{items} 条 / {chars} characters, {items} items")
        )
        mode = result.email.mode
        console.print(
            reader_text(f"邮件版式：{mode} / email mode: {mode}")
            + f"（{reader_text(result.email.reason)}）"
        )
        n = len(result.wechat)
        console.print(
            reader_text(f"公众号文章 {n} 篇；渲染文件在 {render_dir}/ / WeChat articles: {n}; "
               f"rendered files in {render_dir}/")
        )  # fmt: skip

        console.rule(reader_text("2. 订阅者 / subscribers"))
        summary = import_file(subscribers, "周报订阅", report_path=workdir / "import-errors.csv")
        console.print(
            reader_text(f"共 {summary.rows} 行：新增 {summary.new}，无效 {summary.invalid}，重复 "
               f"{summary.duplicate}；错误明细在 {summary.report_path} / rows {summary.rows}: "
               f"new {summary.new}, invalid {summary.invalid}, duplicate {summary.duplicate}; "
               f"errors in {summary.report_path}")
        )  # fmt: skip

        console.rule(reader_text("3. 发送 / send"))
        with session_scope() as s:
            ml = get_list(s, "周报订阅")
            send = Send(
                publication_id=issue.publication_id,
                issue_id=issue_id,
                list_id=ml.id,
                channel="email",
                variant_rule="preference",
                state="draft",
            )
            s.add(send)
            s.flush()
            send_id = send.id
        state = drive_inline(send_id)
        got = len(handler.messages)
        console.print(
            reader_text(f"发送 {send_id}：本地收信服务收到 {got} 封，在 {sink_dir}/ / send {send_id}: "
               f"the sink received {got} messages in {sink_dir}/")
            + f"（{state_words(state)}）"
        )  # fmt: skip

        console.rule(reader_text("4. 打开与点击 / opens and clicks"))
        _serve_web(web_port)
        opened = clicked = scanned = 0
        bodies = []
        for _frm, _rcpt, data in handler.messages:
            msg = email.message_from_bytes(data, policy=email.policy.default)
            html_part = msg.get_body(("html",))
            assert html_part is not None
            bodies.append(html_part.get_content())
        with httpx.Client(timeout=10) as client:
            # Right after delivery: a security scanner follows links in a few messages and
            # Apple's privacy proxy prefetches images. Both are machines, counted apart.
            for n, html in enumerate(bodies):
                pixel = _PIXEL.search(html)
                if pixel and n % 5 == 0:
                    client.get(pixel.group(0), headers={"User-Agent": APPLE_MPP_UA})
                link = _CLICK.search(html)
                if link and n % 7 == 0:
                    client.get(link.group(0), headers={"User-Agent": SCANNER_UA})
                    scanned += 1
            console.print(
                reader_text(f"安全扫描器点了 {scanned} 个链接，Apple 代理预取了图片；{reader_delay:.0f} "
                   f"秒后读者到来… / a scanner followed {scanned} links and Apple's proxy "
                   f"fetched images; readers arrive {reader_delay:.0f}s later…")
            )  # fmt: skip
            time.sleep(reader_delay)
            for n, html in enumerate(bodies):
                pixel = _PIXEL.search(html)
                if pixel is None or n % 2:
                    continue  # about half of the people read it
                client.get(pixel.group(0), headers={"User-Agent": BROWSER_UA})
                opened += 1
                link = _CLICK.search(html)
                if link and n % 4 == 0:
                    r = client.get(link.group(0), headers={"User-Agent": BROWSER_UA})
                    clicked += r.status_code == 302
            archive = f"{settings.base_url}/archive/{ctx.publication_slug}/{doc.number}"
            views = sum(client.get(archive + v).status_code == 200 for v in ("", "?v=zh-Hant", ""))
        console.print(
            reader_text(f"读者打开 {opened} 次、点击 {clicked} 个链接、浏览网页版 {views} 次（{archive}） / "
               f"fetched {opened} pixels as readers, followed {clicked} links and viewed the "
               f"web archive {views} times ({archive})")
        )  # fmt: skip

        console.rule(reader_text("5. 公众号（本地模拟接口） / WeChat (local fake API)"))
        from newsletter.devtools.wechat_demo import demo_publish

        wx = demo_publish(issue_id)
        st = wx["status"]
        draft, publish, mass = st["draft"], st["publish"], st["mass_send"]
        published = publish["status_text"] or st["state"]
        console.print(
            reader_text(f"草稿 {draft['media_id']}：{draft['articles']} 篇；发布：{published}；群发 msg_id "
               f"{mass['msg_id']}（{mass['status']}）；接口请求 {wx['requests']} 次，超限 "
               f"{wx['violations']} 次 / draft {draft['media_id']}: {draft['articles']} "
               f"articles; publish: {published}; mass send msg_id {mass['msg_id']} "
               f"({mass['status']}); {wx['requests']} API requests, {wx['violations']} over "
               "a limit")
        )  # fmt: skip
        totals = wx.get("totals") or {}
        days, reads = totals.get("days", 0), f"{totals.get('read_count', 0):,}"
        readers, shares = f"{totals.get('read_user', 0):,}", f"{totals.get('share_count', 0):,}"
        console.print(
            reader_text(f"模拟 {days} 天：阅读 {reads} 次，{readers} 人，分享 {shares} 次 / WeChat over "
               f"{days} fake days: {reads} reads by {readers} readers, {shares} shares")
        )  # fmt: skip

        console.rule(reader_text("6. 统计 / stats"))
        with session_scope() as s:
            stats = send_stats(s, send_id)
        print_stats(stats, console)
        took = f"{time.monotonic() - t0:.1f}"
        console.print(
            reader_text(f"演示完成，用时 {took} 秒；文件在 {workdir}/ / demo finished in {took}s; "
               f"files under {workdir}/")
        )  # fmt: skip
        return stats
    finally:
        ctrl.stop()
        reset_settings(None)
        dispose()
