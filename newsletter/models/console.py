"""Console users and personal API tokens (the audit log is ``newsletter.models.AuditLog``).

* Passwords are stored only as argon2id hashes (``argon2-cffi``).
* API tokens are random 256-bit secrets; only their SHA-256 is stored, with a
  short public prefix so a person can tell their tokens apart.  A token acts
  with the role of its owner, and stops working when the owner is deactivated.
* ``session_version`` is part of every session cookie: bumping it (password
  change, deactivation, role change) logs the user out everywhere.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.core.orm import Base, utcnow

__all__ = ["ROLES", "ApiToken", "ConsoleSetting", "RecoveryCode", "User"]

#: admin: everything; ops: issues, sends, subscribers; editor: writes and approves
#: issues (never sends, never changes settings); marketing: stats and read-only views.
ROLES = ("admin", "ops", "editor", "marketing")
#: The roles that may approve an issue (and so are told when one waits for review).
APPROVER_ROLES = ("admin", "ops", "editor")


class User(Base):
    __tablename__ = "console_user"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin','ops','editor','marketing')", name="ck_console_user_role"
        ),
        UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_console_user_oidc"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None]
    #: Where review notices are mailed (migration 0024); None: the username if it is an
    #: address, else the console only.
    email: Mapped[str | None] = mapped_column(String(320))
    #: Where the account comes from: "local" (a password) or "oidc" (single sign-on,
    #: the provider's issuer and subject below; such an account has no usable password).
    auth_source: Mapped[str] = mapped_column(String(8), default="local")
    oidc_issuer: Mapped[str | None] = mapped_column(String(500))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    #: The TOTP secret (RFC 6238), encrypted with the secret key (``core.safety.secretbox``);
    #: None: no second factor. ``totp_pending`` holds a secret shown for enrolment until
    #: a code proves the authenticator has it.
    totp_secret: Mapped[str | None] = mapped_column(String(300))
    totp_pending: Mapped[str | None] = mapped_column(String(300))
    totp_enabled_at: Mapped[dt.datetime | None]
    #: The last 30-second step whose code was accepted: a code works once.
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ConsoleSetting(Base):
    """Console-wide switches an admin changes at run time (e.g. ``local_login``)."""

    __tablename__ = "console_setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    #: The first characters of the token (shown in lists; not secret on its own).
    prefix: Mapped[str] = mapped_column(String(16))
    #: SHA-256 (hex) of the whole token. The token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class RecoveryCode(Base):
    """One of a user's ten one-time recovery codes: only its argon2 hash is kept."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("console_user.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    used_at: Mapped[dt.datetime | None]
