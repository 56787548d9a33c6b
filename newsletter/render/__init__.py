"""Render one issue (document model) to every channel.

Channels: email HTML (full or digest, by byte budget) + text/plain part,
WeChat articles, and the standalone web-archive page.  Everything here runs
once per (issue, variant); per-recipient values are slots (see
:mod:`newsletter.render.context`).  :func:`render_all` renders all channels,
:meth:`RenderResult.report` summarises sizes and decisions, and
:func:`write_outputs` writes them to a directory for preview.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsletter.content.model import Issue
from newsletter.render.budget import size_checks
from newsletter.render.context import SLOT_MAX_LEN, SLOTS, RenderContext, archive_url
from newsletter.render.errors import EmailBudgetError, RenderError, WeChatLimitError
from newsletter.render.lines import LIMIT, max_line_octets
from newsletter.render.message import EmailRendition, render_email
from newsletter.render.text import render_text
from newsletter.render.web import render_web
from newsletter.render.wechat import MAX_ARTICLES, WeChatArticle, render_wechat

__all__ = [
    "CHANNELS",
    "SLOTS",
    "SLOT_MAX_LEN",
    "EmailBudgetError",
    "EmailRendition",
    "RenderContext",
    "RenderError",
    "RenderResult",
    "ChannelResults",
    "render_channels",
    "WeChatArticle",
    "WeChatLimitError",
    "archive_url",
    "render_all",
    "render_email",
    "render_text",
    "render_web",
    "render_wechat",
    "size_checks",
    "write_outputs",
]


@dataclass
class RenderResult:
    """Every channel of one issue variant, plus warnings worth showing the author."""

    issue: Issue
    ctx: RenderContext
    email: EmailRendition
    wechat: list[WeChatArticle]
    web: str
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.email.text

    def report(self) -> dict[str, Any]:
        """Sizes (bytes and characters) of each output, email mode and reason, split."""
        return {
            "issue": _issue_report(self.issue),
            "channels": {ch: {"ok": True} for ch in CHANNELS},
            "email": _email_report(self.email, self.ctx),
            "wechat": _wechat_report(self.wechat, self.ctx),
            "web": {"bytes": len(self.web.encode()), "chars": len(self.web)},
            "warnings": list(self.warnings),
        }


#: The channels, in the order they are rendered and reported.
CHANNELS = ("email", "wechat", "web")


@dataclass
class ChannelResults:
    """Each channel rendered on its own: a failing channel leaves the others intact."""

    issue: Issue
    ctx: RenderContext
    email: EmailRendition | None
    wechat: list[WeChatArticle] | None
    web: str | None
    errors: dict[str, str] = field(default_factory=dict)  # channel -> message
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def report(self) -> dict[str, Any]:
        """Like :meth:`RenderResult.report`, with ``channels`` giving each one's outcome."""
        out: dict[str, Any] = {
            "issue": _issue_report(self.issue),
            "channels": {
                ch: {"ok": ch not in self.errors}
                | ({"error": self.errors[ch]} if ch in self.errors else {})
                for ch in CHANNELS
            },
        }
        if self.email is not None:
            out["email"] = _email_report(self.email, self.ctx)
        if self.wechat is not None:
            out["wechat"] = _wechat_report(self.wechat, self.ctx)
        if self.web is not None:
            out["web"] = {"bytes": len(self.web.encode()), "chars": len(self.web)}
        out["warnings"] = list(self.warnings)
        return out


def _issue_report(issue: Issue) -> dict[str, Any]:
    return {
        "number": issue.number,
        "variant": issue.variant,
        "title": issue.title,
        "chars": issue.char_count(),
    }


def _email_report(em: EmailRendition, ctx: RenderContext) -> dict[str, Any]:
    return {
        "mode": em.mode,
        "reason": em.reason,
        "subject": em.subject,
        "preheader": em.preheader,
        "html_bytes": len(em.html.encode()),
        "html_bytes_worst": em.html_bytes_worst,
        "html_chars": len(em.html),
        "budget_bytes": ctx.email_budget_bytes,
        "text_bytes": len(em.text.encode()),
        "text_chars": len(em.text),
        "max_line_octets": max(max_line_octets(em.html), max_line_octets(em.text)),
        "line_limit": LIMIT,
        "link_ids": em.link_ids,
    }


def _wechat_report(articles: list[WeChatArticle], ctx: RenderContext) -> dict[str, Any]:
    return {
        "count": len(articles),
        "max_articles": MAX_ARTICLES,
        "limit_chars": ctx.wechat_max_chars,
        "articles": [
            {
                "index": i,
                "file": f"wechat-{i}.html",
                "title": a.title,
                "author": a.author,
                "digest": a.digest,
                "chars": a.char_count,
                "bytes": len(a.content.encode()),
                "images": a.image_hashes,
                "content_source_url": a.content_source_url,
            }
            for i, a in enumerate(articles, 1)
        ],
    }


def _warnings(issue: Issue, ctx: RenderContext, email: EmailRendition) -> list[str]:
    out: list[str] = []
    if email.mode == "digest":
        out.append(f"email sent as digest: {email.reason}")
    elif email.html_bytes_worst > 0.9 * ctx.email_budget_bytes:
        out.append(f"email close to its size budget: {email.reason}")
    for im in issue.images:
        if not im.sha256:
            out.append(f"image {im.src!r} has no content hash: WeChat cannot host it")
        if not im.src.startswith(("http://", "https://")) and not im.sha256:
            out.append(f"image {im.src!r} is a local file without hash: broken in email")
    return out


def render_all(issue: Issue, ctx: RenderContext) -> RenderResult:
    """Render email (HTML + text), WeChat articles and web page for ``issue``."""
    email = render_email(issue, ctx)
    return RenderResult(
        issue=issue,
        ctx=ctx,
        email=email,
        wechat=render_wechat(issue, ctx),
        web=render_web(issue, ctx),
        warnings=_warnings(issue, ctx, email),
    )


def render_channels(issue: Issue, ctx: RenderContext) -> ChannelResults:
    """Render every channel independently; a :class:`RenderError` is recorded, not raised."""
    out = ChannelResults(issue=issue, ctx=ctx, email=None, wechat=None, web=None)
    try:
        out.email = render_email(issue, ctx)
        out.warnings = _warnings(issue, ctx, out.email)
    except RenderError as exc:
        out.errors["email"] = str(exc)
    try:
        out.wechat = render_wechat(issue, ctx)
    except RenderError as exc:
        out.errors["wechat"] = str(exc)
    try:
        out.web = render_web(issue, ctx)
    except RenderError as exc:
        out.errors["web"] = str(exc)
    return out


def write_outputs(result: RenderResult | ChannelResults, out_dir: str | Path) -> list[Path]:
    """Write email.html, email.txt, wechat-1…N.html, web.html and report.json.

    Only the channels that rendered are written (report.json says which did
    not).  Each file is written to a temporary name and renamed into place.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    if result.email is not None:
        files |= {"email.html": result.email.html, "email.txt": result.email.text}
    for i, a in enumerate(result.wechat or [], 1):
        files[f"wechat-{i}.html"] = a.content
    if result.web is not None:
        files["web.html"] = result.web
    files["report.json"] = json.dumps(result.report(), ensure_ascii=False, indent=2) + "\n"
    written: list[Path] = []
    for name, body in files.items():
        p = out / name
        tmp = p.with_name(p.name + ".tmp")  # never a half-written file under the real name
        try:
            tmp.write_text(body, encoding="utf-8", newline="\n")
            tmp.replace(p)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(p)
    return written
