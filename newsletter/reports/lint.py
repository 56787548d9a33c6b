"""The one lint that both ``newsletter issue lint`` and the console run.

Structure, numbering, metadata, links and images (:mod:`.content.lint`), every
channel's size budget, the e-mail CSS that clients do not support (caniemail
data) and, when WeChat is configured, the external images it must fetch.  The
CLI and the console show the same messages because they call this.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from newsletter.content.lint import LintMessage, lint_source
from newsletter.core.errors import NewsletterError

__all__ = ["full_lint"]


def full_lint(
    text: str, path: str | Path | None, ctx_for: Callable[[Any], Any]
) -> tuple[list[LintMessage], list[tuple[str, str, str]]]:
    """(messages, budgets): lint messages and every size check ``(level, code, message)``.

    ``ctx_for(doc)`` gives the :class:`~.render.context.RenderContext` to measure with.
    """
    from newsletter.render.budget import size_checks

    budgets: list[tuple[str, str, str]] = []

    def sizes(doc: Any) -> list[LintMessage]:
        ctx = ctx_for(doc)
        checks = list(size_checks(doc, ctx))
        budgets.extend(checks)
        out = [
            LintMessage("error" if lvl == "error" else "warning", None, code, msg)
            for lvl, code, msg in checks
            if lvl != "info"
        ]
        return out + _css_support(doc, ctx)

    checks: list[Callable[[Any], list[LintMessage]]] = [sizes]
    from newsletter.core.wechat_settings import get_wechat_settings

    if get_wechat_settings().configured:  # every image must be one WeChat takes
        from newsletter.wechat.lint import local_images, remote_images

        base = Path(path).parent if path is not None else None
        checks.append(remote_images)
        checks.append(lambda doc: local_images(doc, base))
    return lint_source(text, path, extra_checks=checks), budgets


def _css_support(doc: Any, ctx: Any) -> list[LintMessage]:
    from newsletter.render import render_email
    from newsletter.render.csslint import check_css

    try:
        html = render_email(doc, ctx).html
    except NewsletterError:
        return []
    return [
        LintMessage(
            "warning",
            None,
            f"css-support:{f.feature}",
            f"{', '.join(f.unsupported_in)} 不支持 {f.title}（caniemail 数据） / "
            f"{f.title} is not supported by {', '.join(f.unsupported_in)} (caniemail data)",
        )
        for f in check_css(html)
        if f.level == "warning"
    ]
