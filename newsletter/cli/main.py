"""The ``newsletter`` command line (Typer). Every command has ``--help``.

This module only mounts: each domain owns its sub-app, and the output helpers
they share live in :mod:`newsletter.core.terminal`.  Nothing in ``newsletter`` imports
this module (import-linter checks it); it is the entry point and nothing else.
"""

from __future__ import annotations

import sys

import typer

from newsletter.audience.cli import lists_app, seg_app, subs_app, supp_app
from newsletter.cli.lazy import LazyGroup
from newsletter.cli.ops import commands as ops_commands
from newsletter.cli.ops import db_app
from newsletter.delivery.bounces_cli import bounce_app
from newsletter.delivery.bounces_cli import commands as delivery_commands
from newsletter.delivery.cli import send_app
from newsletter.issues.publications_cli import publications_app
from newsletter.reports.cli import commands as report_commands
from newsletter.reports.cli import issue_app
from newsletter.schedule.cli import schedule_app
from newsletter.tracking.cli import commands as tracking_commands

app = typer.Typer(
    help=(
        "邮件与公众号周报分发 / Weekly newsletter for email and WeChat. "
        "Messages follow the locale (LANG); --lang zh|zh-Hant|en|both picks one."
    ),
    no_args_is_help=True,
)

# -- groups ------------------------------------------------------------------
app.add_typer(db_app, name="db")
app.add_typer(issue_app, name="issue")
app.add_typer(publications_app, name="publications")
app.add_typer(subs_app, name="subscribers")
app.add_typer(lists_app, name="lists")
app.add_typer(send_app, name="send")
app.add_typer(schedule_app, name="schedule")
app.add_typer(supp_app, name="suppressions")
app.add_typer(seg_app, name="segments")
app.add_typer(bounce_app, name="bounces")

# -- top-level commands (doctor; stats, ingest; web, worker, beat, demo) -------
app.add_typer(delivery_commands)
app.add_typer(tracking_commands)
app.add_typer(report_commands)
app.add_typer(ops_commands)


# -- groups whose modules are slow to import: loaded when used ------------------
class _Root(LazyGroup):
    lazy = {  # name -> (module, attribute, one-line help shown in `newsletter --help`)
        "dkim": (
            "newsletter.delivery.dkim_keys",
            "dkim_app",
            "DKIM keys: generate a key pair and print its DNS record",
        ),
        "wechat": (
            "newsletter.wechat.cli",
            "wechat_app",
            "WeChat Official Account / 公众号: check, preview, publish, stats",
        ),
        "users": (
            "newsletter.web.console.cli",
            "users_app",
            "Console users and personal API tokens",
        ),
        "tracking": ("newsletter.reports.cli", "stats_app", "Open/click statistics / 阅读统计"),
        "relays": (
            "newsletter.delivery.relays_cli",
            "relays_app",
            "Relays: list, status / 发信服务器",
        ),
        "warmup": (
            "newsletter.delivery.relays_cli",
            "warmup_app",
            "Warm-up of sending domains / 预热",
        ),
    }


app.info.cls = _Root


def main() -> None:
    """Entry point: every error is one line in the reader's language, non-zero exit;
    ``--debug`` shows tracebacks, ``--lang`` picks the language."""
    from newsletter.cli.errors import run

    sys.exit(run(app))


if __name__ == "__main__":
    main()
