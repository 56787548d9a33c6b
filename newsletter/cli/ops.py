"""``newsletter db …``, ``web``, ``worker``, ``beat`` and ``demo``: running the service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.core.errors import NewsletterError
from newsletter.core.terminal import console, fail

__all__ = ["commands", "db_app"]

db_app = typer.Typer(help="Database migrations", no_args_is_help=True)
commands = typer.Typer()  # top-level commands: mounted without a name


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations (idempotent)."""
    from newsletter.core.db import current_revision, upgrade

    upgrade()
    console.print(f"database at revision [bold]{current_revision()}[/]")


@db_app.command("current")
def db_current() -> None:
    """Print the current migration revision."""
    from newsletter.core.db import current_revision

    console.print(current_revision() or "(empty)")


@commands.command("web")
def web(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the web app (pixel, clicks, unsubscribe, archive)."""
    import uvicorn

    from newsletter.core.config import require_secret_key
    from newsletter.web.app import create_asgi

    require_secret_key("web")
    from newsletter.core.config import get_settings

    if get_settings().embedded_mode:  # no beat: this process sends the event webhooks
        from newsletter.runtime.webhook_loop import start
        from newsletter.runtime.welcome_loop import start as start_welcome

        start()
        start_welcome()  # and the welcome steps that are due
    uvicorn.run(create_asgi(), host=host, port=port)


@commands.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(help="worker processes")] = 2,
    loglevel: str = "info",
) -> None:
    """Start a Celery worker on the configured broker."""
    from newsletter.core.config import require_secret_key
    from newsletter.core.dispatch import dispatcher

    require_secret_key("worker")
    from newsletter.core.multiproc import prepare_multiprocess

    prepare_multiprocess("worker")  # the task processes' counters, summed at /metrics
    try:
        dispatcher().run_worker(concurrency, loglevel)
    except NewsletterError as exc:
        fail(exc)


@commands.command("beat")
def beat(loglevel: str = "info") -> None:
    """Start Celery beat (the scheduler tick and the event ingester)."""
    from newsletter.core.config import get_settings, require_secret_key
    from newsletter.core.dispatch import dispatcher

    require_secret_key("beat")
    var = get_settings().var_dir
    var.mkdir(parents=True, exist_ok=True)
    try:
        dispatcher().run_beat(loglevel, var / "celerybeat-schedule")
    except NewsletterError as exc:
        fail(exc)


@commands.command("demo")
def demo(
    workdir: Annotated[Path, typer.Option(help="where the demo keeps its files")] = Path(
        "var/demo"
    ),
    issue_file: Annotated[
        Path | None,
        typer.Option("--issue", help="default: the example issue shipped with the package"),
    ] = None,
    subscribers: Annotated[
        Path | None, typer.Option(help="default: the example list shipped with the package")
    ] = None,
) -> None:
    """Run the whole slice with no services: render, import, send, open, stats."""
    from newsletter.devtools.demo import run_demo

    try:
        run_demo(workdir, issue_file, subscribers, console)
    except NewsletterError as exc:
        fail(exc)
