"""An error that reached the top as an exit code and one line, in the reader's language.

Errors raised on purpose (:class:`~newsletter.core.errors.NewsletterError`) give their
message; the usual environmental failures (database unreachable, missing or not
migrated, a bad URL, Redis or the broker down, a file that cannot be read or written,
a value too large for its column) become one line that says what and where. Database
URLs are shown without their password.

Every line is a catalogue entry (``cli.*`` in ``messages.yaml``) or the error's own
coded message, shown as :func:`newsletter.core.catalogue.reader_language` asks: both
languages with Chinese first unless the locale or ``--lang`` picks one.

Exit codes: 2 bad input or configuration, 3 a service is unreachable, 4 a file could
not be read or written, 1 anything unexpected.
"""

from __future__ import annotations

import re

from newsletter.core.catalogue import Message, for_reader, message, reader_language

__all__ = ["describe", "one_line"]

_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


#: characters that would act on a terminal rather than be read (C0 and C1 controls but
#: tab and newline, and the direction overrides): shown escaped, as \x1b or \u202e
_ACTING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def one_line(text: str) -> str:
    """``text`` as one line a terminal only shows: passwords in URLs masked, runs of white
    space (newlines too) made one space, control characters escaped, at most 600
    characters."""
    text = _PASSWORD_IN_URL.sub(r"\1***@", str(text))
    text = _ACTING.sub(lambda m: ascii(m.group())[1:-1], text)
    first = " ".join(text.split())
    return first[:600]


def _db_where() -> str:
    try:
        from newsletter.core.config import get_settings

        return _PASSWORD_IN_URL.sub(r"\1***@", get_settings().db_url)
    except Exception:
        return "the configured database"


def _redis_where() -> str:
    try:
        from newsletter.core.config import get_settings

        cfg = get_settings()
        return _PASSWORD_IN_URL.sub(r"\1***@", cfg.redis_url or cfg.broker_url)
    except Exception:
        return "Redis"


def _sqlalchemy(exc: BaseException) -> tuple[int, Message] | None:
    try:
        from sqlalchemy import exc as sa
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, sa.ArgumentError | sa.NoSuchModuleError):
        return 2, message("cli.bad_database_url", detail=one_line(str(exc)))
    if not isinstance(exc, sa.DBAPIError | sa.StatementError):
        return None
    orig = getattr(exc, "orig", None)
    text = str(orig or exc).lower()
    if isinstance(exc, sa.DataError) or "out of range" in text or isinstance(orig, OverflowError):
        return 2, message("cli.too_large")
    if "does not exist" in text and "database" in text:
        return 3, message("cli.no_database", where=_db_where())
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return 3, message("cli.not_migrated", where=_db_where())
    if isinstance(exc, sa.OperationalError | sa.InterfaceError):
        return 3, message("cli.database_unreachable", where=_db_where())
    if isinstance(exc, sa.IntegrityError):
        return 2, message("cli.conflict")
    return None


def _services(exc: BaseException) -> tuple[int, Message] | None:
    mod = type(exc).__module__
    name = type(exc).__name__
    if mod.startswith("redis") and ("Connection" in name or "Timeout" in name):
        return 3, message("cli.redis_unreachable", where=_redis_where())
    if mod.startswith(("kombu", "amqp")) or (mod.startswith("celery") and "Operational" in name):
        return 3, message("cli.broker_unreachable", where=_redis_where())
    return None


def describe(exc: BaseException, lang: str | None = None) -> tuple[int, str]:
    """(exit code, one line) for an error that reached the top of the CLI, in ``lang``
    (default: the reader's, from the environment)."""
    lang = lang or reader_language()
    code, said = _classify(exc)
    if isinstance(said, Message):
        return code, said.for_reader(lang)
    return code, for_reader(said, lang)


def _classify(exc: BaseException) -> tuple[int, Message | str]:
    from newsletter.core.errors import NewsletterError

    if isinstance(exc, NewsletterError):
        msg = getattr(exc, "msg", None)
        return 2, msg if isinstance(msg, Message) else one_line(str(exc))
    for probe in (_sqlalchemy, _services):
        found = probe(exc)
        if found is not None:
            return found
        cause = exc.__cause__ or exc.__context__
        if cause is not None:
            found = probe(cause)
            if found is not None:
                return found
    detail = one_line(str(exc))
    path = str(getattr(exc, "filename", "") or "")
    if isinstance(exc, IsADirectoryError):
        return 4, message("cli.is_directory", path=path)
    if isinstance(exc, NotADirectoryError):
        return 4, message("cli.not_directory", path=path)
    if isinstance(exc, FileNotFoundError):
        return 4, message("cli.no_such_file", path=path)
    if isinstance(exc, PermissionError):
        return 4, message("cli.permission", path=path)
    if isinstance(exc, ConnectionError):
        return 3, message("cli.unreachable", detail=detail)
    if isinstance(exc, OSError):
        where = f"{path}: " if path else ""
        return 4, message("cli.file_io", where=where, detail=exc.strerror or detail)
    if isinstance(exc, UnicodeError):
        return 2, message("cli.not_text", detail=detail)
    if isinstance(exc, ValueError) and "null" in str(exc).lower():
        return 2, message("cli.nul_byte")
    if isinstance(exc, ValueError):
        return 2, message("cli.invalid_value", detail=detail)
    return 1, message("cli.unexpected", kind=type(exc).__name__, detail=detail)
