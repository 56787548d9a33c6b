"""Two-factor login for local console accounts: TOTP (RFC 6238) and recovery codes.

* The TOTP secret is kept encrypted with the secret key (``core.safety.secretbox``). A
  secret is first *pending*: shown once as a QR code (the product's QR module) and as
  text, and turned on only when a code computed from it is typed back.
* A code is accepted for the current 30-second step and one step either side, and only
  for a step after the last accepted one: a code works once.
* Ten recovery codes are made when the factor is turned on; only their argon2 hashes
  are kept and each works once.
* Which roles must use a second factor is a per-install choice of the admin
  (``console_setting`` ``two_factor_roles``); until one is made, the setting
  ``NEWSLETTER_TWO_FACTOR_ROLES`` (default admin and ops) applies. Single sign-on
  accounts are left to their provider.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select

from newsletter.core import clock
from newsletter.core.config import get_settings
from newsletter.core.errors import NewsletterError
from newsletter.core.safety.secretbox import box_text, unbox_text
from newsletter.models import utcnow
from newsletter.models.console import ROLES, ConsoleSetting, RecoveryCode, User

__all__ = [
    "RECOVERY_CODES",
    "check_code",
    "confirm_enrolment",
    "enrolment",
    "has_two_factor",
    "must_enrol",
    "recovery_left",
    "required_roles",
    "reset",
    "set_required_roles",
]

ROLES_KEY = "two_factor_roles"
PURPOSE = "console-totp"
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper
#: Recovery codes carry about 49 bits each: a light argon2 is plenty and keeps a check
#: of ten hashes well under a second.
_hasher = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1)
_DIGITS = re.compile(r"\d{6}")


def required_roles(s: Any) -> frozenset[str]:
    row = s.get(ConsoleSetting, ROLES_KEY)
    raw = row.value if row is not None else get_settings().two_factor_roles
    return frozenset(r.strip() for r in raw.split(",") if r.strip() in ROLES)


def set_required_roles(s: Any, roles: list[str], actor: str) -> list[str]:
    chosen = [r for r in ROLES if r in roles]
    row = s.get(ConsoleSetting, ROLES_KEY)
    if row is None:
        row = ConsoleSetting(key=ROLES_KEY, value="")
        s.add(row)
    row.value = ",".join(chosen)
    row.updated_at = utcnow()
    row.updated_by = actor[:320]
    return chosen


def has_two_factor(user: User) -> bool:
    return user.auth_source == "local" and user.totp_secret is not None


def must_enrol(s: Any, user: User) -> bool:
    """A local account of a role that needs a second factor, without one yet."""
    return (
        user.auth_source == "local" and user.totp_secret is None and user.role in required_roles(s)
    )


def _uri(secret: str, username: str) -> str:
    host = get_settings().base_url.split("//", 1)[-1].split("/", 1)[0] or "newsletter"
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=f"Newsletter {host}")


def enrolment(s: Any, user: User) -> tuple[str, str]:
    """(secret, otpauth URI) to show: the pending secret, made now if there is none."""
    if user.totp_pending:
        secret = unbox_text(user.totp_pending, PURPOSE)
    else:
        secret = pyotp.random_base32()
        user.totp_pending = box_text(secret, PURPOSE)
    return secret, _uri(secret, user.username)


def _step(secret: str, code: str, last: int) -> int | None:
    """The time step ``code`` belongs to (now or one step either side), after ``last``."""
    code = code.strip().replace(" ", "")
    if not _DIGITS.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    now = int(clock.timestamp())
    found = None
    for offset in (-1, 0, 1):
        at = now + offset * totp.interval
        if secrets.compare_digest(totp.at(at), code):
            found = at // totp.interval
    return found if found is not None and found > last else None


def _new_recovery_codes(s: Any, user: User) -> list[str]:
    s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        s.add(RecoveryCode(user_id=user.id, code_hash=_hasher.hash(raw)))
    return codes


def confirm_enrolment(s: Any, user: User, code: str) -> list[str]:
    """Turn the factor on when ``code`` matches the pending secret; the recovery codes
    (shown once)."""
    if user.auth_source != "local":
        raise NewsletterError(
            "单点登录账号的第二因素由身份提供方管理 / SSO accounts use their provider"
        )
    if not user.totp_pending:
        raise NewsletterError("请先打开两步验证页面扫码 / open the enrolment page first")
    secret = unbox_text(user.totp_pending, PURPOSE)
    step = _step(secret, code, 0)
    if step is None:
        raise NewsletterError("验证码不正确 / the code is not right")
    user.totp_secret, user.totp_pending = user.totp_pending, None
    user.totp_last_step = step
    user.totp_enabled_at = utcnow()
    return _new_recovery_codes(s, user)


def regenerate_recovery_codes(s: Any, user: User, code: str) -> list[str]:
    """Ten new recovery codes for an enrolled local account, the old ones void; only with
    a current authenticator code (a recovery code cannot renew the codes). Shown once."""
    if not has_two_factor(user) or user.auth_source != "local":
        raise NewsletterError("两步验证尚未开启 / two-factor login is not on")
    assert user.totp_secret is not None
    step = _step(unbox_text(user.totp_secret, PURPOSE), code, user.totp_last_step)
    if step is None:
        raise NewsletterError("验证码不正确 / the code is not right")
    user.totp_last_step = step
    return _new_recovery_codes(s, user)


def check_code(s: Any, user: User, code: str) -> str | None:
    """ "totp" or "recovery" when ``code`` is a current TOTP code or an unused recovery
    code of ``user`` (which is then used up), else None. The caller commits."""
    if not has_two_factor(user) or not code:
        return None
    assert user.totp_secret is not None
    step = _step(unbox_text(user.totp_secret, PURPOSE), code, user.totp_last_step)
    if step is not None:
        user.totp_last_step = step
        return "totp"
    raw = re.sub(r"[\s-]", "", code).lower()
    if len(raw) != 10 or any(c not in _ALPHABET for c in raw):
        return None
    unused = s.scalars(
        select(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        .with_for_update()
    ).all()
    for row in unused:
        try:
            _hasher.verify(row.code_hash, raw)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            continue
        row.used_at = utcnow()
        return "recovery"
    return None


def recovery_left(s: Any, user_id: int) -> int:
    return int(
        s.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


def reset(s: Any, user: User) -> None:
    """Remove the second factor and its recovery codes; every session of the user ends."""
    user.totp_secret = user.totp_pending = None
    user.totp_enabled_at = None
    user.totp_last_step = 0
    user.session_version += 1
    s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
