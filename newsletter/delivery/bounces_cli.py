"""``newsletter bounces …`` and ``doctor``: bounce and complaint intake, the sender's checks.

The send commands are ``cli``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.core.errors import NewsletterError
from newsletter.core.terminal import JsonOpt, console, emit, fail

__all__ = ["bounce_app", "commands"]

bounce_app = typer.Typer(help="Bounces and complaints: DSN/ARF intake", no_args_is_help=True)
commands = typer.Typer()  # top-level commands: mounted without a name


@bounce_app.command("serve")
def bounces_serve(
    host: str = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="SMTP port for bounces+TOKEN@ and unsubscribe+TOKEN@")
    ] = 2525,
) -> None:
    """Run the SMTP endpoint that receives DSNs, ARF complaints and mailto unsubscribes."""
    import time

    from newsletter.core.config import require_secret_key
    from newsletter.delivery.bounces import start_bounce_server

    # It acts on signed addresses (unsubscribe+TOKEN@): never with a public key.
    try:
        require_secret_key("bounces")
    except NewsletterError as exc:
        fail(exc)

    ctrl, _handler = start_bounce_server(host, port)
    console.print(f"bounce/unsubscribe SMTP endpoint on {host}:{port} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        ctrl.stop()


@bounce_app.command("scan")
def bounces_scan(maildir: Path, as_json: JsonOpt = False) -> None:
    """Apply every DSN/ARF report found in a maildir (already processed ones are skipped)."""
    from dataclasses import asdict

    from newsletter.delivery.bounces import process_maildir

    results = process_maildir(maildir)
    data = [asdict(r) for r in results]
    if not emit(data, as_json):
        console.print(f"{len(results)} report(s) processed")


@commands.command("doctor")
def doctor(as_json: JsonOpt = False) -> None:
    """Check the settings and DNS a sender needs (key, https, DKIM, SPF, DMARC, relay).

    Exits 1 when a check fails; each problem says what to fix, in Chinese and English.
    """
    from newsletter.delivery.doctor import run_doctor

    out = run_doctor()
    if not emit(out, as_json):
        marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
        for c in out["checks"]:
            console.print(f"{marks[c['status']]} {c['name']}: {c['detail']}", markup=True)
            if c["fix"]:
                console.print(f"    → {c['fix']}", markup=False)
    if not out["ok"]:
        raise typer.Exit(1)
