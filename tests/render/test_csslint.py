"""CSS support lint against the vendored caniemail data."""

from __future__ import annotations

from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.render.csslint import check_css, data_version, used_features
from tests.conftest import EXAMPLES


def test_unsupported_layout_css_is_reported_for_outlook() -> None:
    html = '<div style="display:flex;position:absolute;color:#333">x</div>'
    assert {"css-display", "css-position", "css-color"} <= used_features(html)
    findings = {f.feature: f for f in check_css(html)}
    assert "outlook/windows" in findings["css-position"].unsupported_in
    assert findings["css-position"].level == "warning"
    assert "css-color" not in findings  # supported everywhere
    assert data_version().startswith("20")


def test_media_queries_are_progressive_not_warnings() -> None:
    html = "<style>@media (max-width:620px){.w{width:100%!important}}</style><p>x</p>"
    findings = {f.feature: f for f in check_css(html)}
    assert findings["css-at-media"].level == "info"


def test_issue_lint_includes_css_support(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(app, ["issue", "lint", str(EXAMPLES / "issue-sample.md"), "--json"])
    assert r.exit_code == 0, r.output
    assert "css-support:" in r.output
