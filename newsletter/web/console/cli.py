"""``newsletter users create|list|token``: console accounts from the command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from newsletter.core.errors import NewsletterError
from newsletter.core.terminal import error_line

__all__ = ["users_app"]

users_app = typer.Typer(help="Console users and personal API tokens", no_args_is_help=True)


@users_app.command("create")
def create(
    username: str,
    role: Annotated[str, typer.Option(help="admin, ops or marketing")] = "ops",
    display_name: Annotated[str, typer.Option("--name", help="shown in the console")] = "",
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="NEWSLETTER_NEW_PASSWORD",
            help="at least 10 characters",
        ),
    ] = "",
) -> None:
    """Create a console user (the password is hashed with argon2id)."""
    from newsletter.web.console.services import create_user

    try:
        out = create_user("cli", username, password, role, display_name)
    except NewsletterError as exc:
        error_line(str(exc))
        raise typer.Exit(1) from None
    typer.echo(f"user {out['username']} created ({out['role']})")


@users_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List console users."""
    from newsletter.web.console.services import list_users

    rows = list_users()
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        state = "" if r["active"] else "  (inactive)"
        typer.echo(f"{r['username']:<32} {r['role']:<10} {r['display_name']}{state}")


@users_app.command("token")
def token(
    username: str,
    name: Annotated[str, typer.Option(help="a label for the token")] = "cli",
    days: Annotated[int, typer.Option(help="lifetime in days (0: no expiry)")] = 90,
) -> None:
    """Create a personal API token for USERNAME and print it (shown once; only its hash is kept)."""
    from sqlalchemy import select

    from newsletter.core.db import session_scope
    from newsletter.models.console import User
    from newsletter.web.console.services import create_token

    with session_scope() as s:
        uid = s.scalar(select(User.id).where(User.username == username.strip().lower()))
    if uid is None:
        error_line(f"用户 {username} 不存在 / user {username} does not exist")
        raise typer.Exit(1)
    out = create_token("cli", uid, name, days or None)
    typer.echo(out["token"])


@users_app.command("local-login")
def local_login(
    state: Annotated[str, typer.Argument(help="on, off or status")] = "status",
) -> None:
    """Break glass: turn local (password) logins on or off, or show whether they are on."""
    from newsletter.core.db import session_scope
    from newsletter.web.console.switches import local_login_enabled, set_local_login

    if state not in ("on", "off", "status"):
        error_line("请写 on、off 或 status / write on, off or status")
        raise typer.Exit(2)
    try:
        with session_scope() as s:
            if state != "status":
                set_local_login(s, state == "on", "cli")
            on = local_login_enabled(s)
    except NewsletterError as exc:
        error_line(str(exc))
        raise typer.Exit(1) from None
    typer.echo(
        "本地账号登录：开启 / local logins: on" if on else "本地账号登录：关闭 / local logins: off"
    )


two_factor_app = typer.Typer(help="Two-factor login (TOTP) of local accounts", no_args_is_help=True)
users_app.add_typer(two_factor_app, name="2fa")


@two_factor_app.command("reset")
def two_factor_reset(username: str) -> None:
    """Remove USERNAME's second factor and recovery codes (a lost phone); audited. The
    user's sessions end; a role that requires 2FA enrols again at the next login."""
    from sqlalchemy import select

    from newsletter.core.audit import audit
    from newsletter.core.db import session_scope
    from newsletter.models.console import User
    from newsletter.web.console.twofactor import reset

    with session_scope() as s:
        user = s.scalar(select(User).where(User.username == username.strip().lower()))
        if user is None:
            error_line(f"用户 {username} 不存在 / user {username} does not exist")
            raise typer.Exit(1)
        name, had = user.username, user.totp_secret is not None
        reset(s, user)
        audit(s, "cli", "user.2fa_reset", name, had_two_factor=had)
    typer.echo(f"已重置 {name} 的两步验证 / two-factor login of {name} reset")
