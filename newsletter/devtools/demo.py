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
from newsletter.reports.cli import print_stats

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
        console.rule("1. issue / 期刊")
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
        console.print(
            f"第{doc.number}期《{doc.title}》: {doc.char_count():,} characters, "
            f"{len(doc.iter_items())} items"
        )
        console.print(f"email mode: [bold]{result.email.mode}[/] ({result.email.reason})")
        console.print(f"WeChat articles: {len(result.wechat)}; rendered files in {render_dir}/")

        console.rule("2. subscribers / 订阅者")
        summary = import_file(subscribers, "周报订阅", report_path=workdir / "import-errors.csv")
        console.print(
            f"rows {summary.rows}: new {summary.new}, invalid {summary.invalid}, "
            f"duplicate {summary.duplicate}; errors in {summary.report_path}"
        )

        console.rule("3. send / 发送")
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
        console.print(
            f"send {send_id}: {state}; the sink received {len(handler.messages)} "
            f"messages in {sink_dir}/"
        )

        console.rule("4. opens and clicks / 打开与点击")
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
                f"a scanner followed {scanned} links and Apple's proxy fetched images; "
                f"readers arrive {reader_delay:.0f}s later…"
            )
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
            f"fetched {opened} pixels as readers, followed {clicked} links and "
            f"viewed the web archive {views} times ({archive})"
        )

        console.rule("5. WeChat / 公众号 (local fake API)")
        from newsletter.devtools.wechat_demo import demo_publish

        wx = demo_publish(issue_id)
        st = wx["status"]
        draft, publish, mass = st["draft"], st["publish"], st["mass_send"]
        console.print(
            f"draft {draft['media_id']}: {draft['articles']} articles; "
            f"publish: {publish['status_text'] or st['state']}; "
            f"mass send msg_id {mass['msg_id']} ({mass['status']}); "
            f"{wx['requests']} API requests, {wx['violations']} over a limit"
        )
        totals = wx.get("totals") or {}
        console.print(
            f"WeChat over {totals.get('days', 0)} fake days: {totals.get('read_count', 0):,} reads "
            f"by {totals.get('read_user', 0):,} readers, {totals.get('share_count', 0):,} shares"
        )

        console.rule("6. stats / 统计")
        with session_scope() as s:
            stats = send_stats(s, send_id)
        print_stats(stats, console)
        console.print(f"demo finished in {time.monotonic() - t0:.1f}s; files under {workdir}/")
        return stats
    finally:
        ctrl.stop()
        reset_settings(None)
        dispose()
