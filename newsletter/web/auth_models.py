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

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base, utcnow

__all__ = ["ROLES", "ApiToken", "User"]

#: admin: everything; ops: issues, sends, subscribers; editor: writes and approves
#: issues (never sends, never changes settings); marketing: stats and read-only views.
ROLES = ("admin", "ops", "editor", "marketing")


class User(Base):
    __tablename__ = "console_user"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin','ops','editor','marketing')", name="ck_console_user_role"
        ),
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
