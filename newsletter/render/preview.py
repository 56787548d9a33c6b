"""A local preview page: the email at desktop and phone widths, the digest when one
applies, the WeChat articles in phone-sized frames and the web page, side by side.

``preview_html`` builds one self-contained page (every output embedded with
``srcdoc``, no external assets).  ``screenshots`` renders each output in headless
Chromium and writes PNG files.
"""

from __future__ import annotations

import html
from pathlib import Path

from newsletter.render import RenderResult

__all__ = ["CHROMIUM_ARGS", "preview_html", "screenshots"]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _personalise(doc: str) -> str:
    """Fill the per-recipient slots with sample values, as a reader would see them."""
    return (
        doc.replace("%%NAME%%", "示例读者")
        .replace("%%TOKEN%%", "preview")
        .replace("%%UNSUB%%", "preview")
    )


def _frame(title: str, doc: str, width: int, height: int = 900) -> str:
    doc = _personalise(doc)
    return (
        f"<figure><figcaption>{html.escape(title)}</figcaption>"
        f'<iframe width="{width}" height="{height}" srcdoc="{html.escape(doc, quote=True)}">'
        "</iframe></figure>"
    )


def preview_html(result: RenderResult, title: str) -> str:
    email = result.email
    frames = [
        _frame(f"邮件 · 桌面 / email desktop ({email.mode})", email.html, 760),
        _frame(f"邮件 · 手机 / email phone ({email.mode})", email.html, 375),
        _frame(
            "纯文本 / text part",
            f"<pre style='white-space:pre-wrap'>{html.escape(email.text)}</pre>",
            420,
        ),
    ]
    for i, art in enumerate(result.wechat, start=1):
        frames.append(
            _frame(
                f"公众号 {i}/{len(result.wechat)} · {art.title} ({art.char_count:,} 字符)",
                art.content,
                375,
            )
        )
    frames.append(_frame("网页存档 / web archive", result.web, 375))
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings)
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>预览 · {html.escape(title)}</title>
<style>body{{font-family:"PingFang SC","Microsoft YaHei","WenQuanYi Micro Hei",sans-serif;
margin:16px;background:#eef0f3}}
.row{{display:flex;gap:16px;overflow-x:auto;align-items:flex-start}}
figure{{margin:0}} figcaption{{font-size:13px;color:#444;margin:4px 0}}
iframe{{background:#fff;border:1px solid #ccc;border-radius:6px}}</style></head><body>
<h1 style="font-size:18px">{html.escape(title)}</h1>
<p>email: <b>{email.mode}</b> — {html.escape(email.reason)}</p>
<ul>{warnings}</ul><div class="row">{"".join(frames)}</div></body></html>"""


def screenshots(result: RenderResult, out_dir: Path) -> list[Path]:
    """Render each output in headless Chromium (Debian's /usr/bin/chromium) to PNG files."""
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    shots: list[tuple[str, str, int]] = [
        ("email-desktop.png", result.email.html, 760),
        ("email-phone.png", result.email.html, 375),
        ("web-phone.png", result.web, 375),
    ]
    shots += [(f"wechat-{i}.png", a.content, 375) for i, a in enumerate(result.wechat, start=1)]
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            for name, doc, width in shots:
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.set_content(_personalise(doc), wait_until="load")
                path = out_dir / name
                page.screenshot(path=str(path), full_page=False)
                page.close()
                written.append(path)
        finally:
            browser.close()
    return written
