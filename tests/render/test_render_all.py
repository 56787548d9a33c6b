"""render_all / write_outputs / report / size_checks, and the real parser when present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, make_ctx

from newsletter.content.model import Issue
from newsletter.render import render_all, size_checks, write_outputs
from newsletter.render.context import RenderContext
from newsletter.render.lines import LIMIT, max_line_octets
from newsletter.render.templating import ENV, TEMPLATES_DIR


def test_templates_dir_and_autoescape() -> None:
    assert (ROOT / "templates").resolve() == TEMPLATES_DIR
    assert (TEMPLATES_DIR / "email" / "full.html").is_file()
    assert ENV.autoescape is True
    assert ENV.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"


def test_render_all_writes_every_output(
    big_issue: Issue, ctx: RenderContext, tmp_path: Path
) -> None:
    result = render_all(big_issue, ctx)
    files = {p.name for p in write_outputs(result, tmp_path)}
    n = len(result.wechat)
    assert files == {"email.html", "email.txt", "web.html", "report.json"} | {
        f"wechat-{i}.html" for i in range(1, n + 1)
    }
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["email"]["mode"] == result.email.mode
    assert report["email"]["reason"] == result.email.reason
    assert report["email"]["html_bytes"] == len(result.email.html.encode())
    assert report["email"]["text_chars"] == len(result.email.text)
    assert [a["chars"] for a in report["wechat"]["articles"]] == [
        a.char_count for a in result.wechat
    ]
    assert report["web"]["bytes"] == len(result.web.encode())
    assert any("digest" in w for w in report["warnings"])
    assert (tmp_path / "email.html").read_text(encoding="utf-8") == result.email.html


def test_size_checks_report_every_channel(big_issue: Issue, ctx: RenderContext) -> None:
    findings = size_checks(big_issue, ctx)
    codes = {c for _, c, _ in findings}
    assert {"email-digest", "email-lines", "email-text", "wechat-articles", "web-size"} <= codes
    assert all(level in ("error", "warning", "info") for level, _, _ in findings)
    tight = size_checks(big_issue, make_ctx(email_budget_bytes=5_000, wechat_max_chars=3_000))
    assert {c for lv, c, _ in tight if lv == "error"} == {"email-budget", "wechat-limit"}


_SAMPLE = ROOT / "examples" / "issue-sample.md"


@pytest.mark.parametrize("variant", ["zh-Hans", "zh-Hant"])
def test_sample_issue_through_the_parser(variant: str, ctx: RenderContext) -> None:
    from newsletter.content.parser import load_issue
    from newsletter.content.variants import to_variant

    doc, _ = load_issue(_SAMPLE)
    issue = to_variant(doc, variant)
    result = render_all(issue, ctx)
    em = result.email
    assert em.html_bytes_worst <= ctx.email_budget_bytes
    assert max_line_octets(em.html) <= LIMIT and max_line_octets(em.text) <= LIMIT
    assert all(a.char_count < ctx.wechat_max_chars for a in result.wechat)
    for _, it in issue.iter_items():
        assert it.title in result.web
    if em.mode == "full":
        # every link the parser numbered is tracked under its own position
        assert sorted(em.link_ids) == [lk.position for lk in issue.links]
    assert "data-link" not in em.html and "data-link" not in result.web
