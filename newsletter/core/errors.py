"""The exception hierarchy.

Every error meant for a person says *what* was wrong, *where* (file, line,
row or field) and, where it helps, what was expected.  Callers catch
:class:`NewsletterError` to handle any of them.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeliveryError",
    "ImportFileError",
    "IssueFormatError",
    "NewsletterError",
    "NotFound",
    "SealError",
    "ServiceUnavailable",
    "StateError",
    "TokenError",
]


class NewsletterError(Exception):
    """Base class of all errors raised on purpose by this package."""


class ConfigError(NewsletterError):
    pass


class IssueFormatError(NewsletterError):
    """The issue source is malformed. Carries the path and 1-based line."""

    def __init__(self, message: str, *, line: int | None = None, path: str | None = None):
        self.message = message
        self.line = line
        self.path = path
        where = path or ""
        if line is not None:
            where = f"{where}:{line}" if where else f"第{line}行 / line {line}"
        super().__init__(f"{where}: {message}" if where else message)


class ImportFileError(NewsletterError):
    """A subscriber file cannot be imported at all (wrong format, no email column…)."""


class TokenError(NewsletterError):
    """A signed token is forged, altered, expired or of the wrong kind."""


class StateError(NewsletterError):
    """An operation is not allowed in the object's current state."""


class NotFound(NewsletterError):
    pass


class SealError(StateError):
    """What was approved cannot be used as approved (sealed issues).

    ``code`` names the case, one line each, Chinese first:

    * ``seal-missing``: the issue has no sealed version (approved before sealing existed);
    * ``seal-broken``: the sealed version no longer matches its seal (a blob or the stored
      source was changed after approval); ops are alerted;
    * ``seal-stale``: the renderer changed since the approval;
    * ``seal-asset``: an asset the source references cannot be read, so nothing is sealed.
    """

    CODES = ("seal-missing", "seal-broken", "seal-stale", "seal-asset")

    def __init__(self, code: str, zh: str, en: str, **detail: object) -> None:
        assert code in self.CODES, code
        self.code, self.zh, self.en, self.detail = code, zh, en, detail
        super().__init__(f"{zh} / {en} [{code}]")


class DeliveryError(NewsletterError):
    pass


class ServiceUnavailable(NewsletterError):
    """A service the operation needs (database, broker, Redis) cannot be reached."""
