"""An error that reached the top as an exit code and one line (English / 中文).

Errors raised on purpose (:class:`~newsletter.core.errors.NewsletterError`) give their
message; the usual environmental failures (database unreachable, missing or not
migrated, a bad URL, Redis or the broker down, a file that cannot be read or written,
a value too large for its column) become one line that says what and where. Database
URLs are shown without their password.

Exit codes: 2 bad input or configuration, 3 a service is unreachable, 4 a file could
not be read or written, 1 anything unexpected.
"""

from __future__ import annotations

import re

__all__ = ["describe", "one_line"]

_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def one_line(text: str) -> str:
    text = _PASSWORD_IN_URL.sub(r"\1***@", str(text))
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


def _sqlalchemy(exc: BaseException) -> tuple[int, str] | None:
    try:
        from sqlalchemy import exc as sa
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, sa.ArgumentError | sa.NoSuchModuleError):
        return 2, (
            f"NEWSLETTER_DATABASE_URL is not a valid database URL ({one_line(str(exc))}) "
            "/ 数据库地址无效"
        )
    if not isinstance(exc, sa.DBAPIError | sa.StatementError):
        return None
    orig = getattr(exc, "orig", None)
    text = str(orig or exc).lower()
    if isinstance(exc, sa.DataError) or "out of range" in text or isinstance(orig, OverflowError):
        return 2, "a value is too large for its column (id or number out of range) / 数值超出范围"
    if "does not exist" in text and "database" in text:
        return 3, f"database does not exist: {_db_where()} / 数据库不存在"
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return 3, (
            f"database is not migrated: run `newsletter db upgrade` ({_db_where()}) "
            "/ 数据库未迁移：请运行 newsletter db upgrade"
        )
    if isinstance(exc, sa.OperationalError | sa.InterfaceError):
        return 3, f"cannot reach the database at {_db_where()} / 无法连接数据库"
    if isinstance(exc, sa.IntegrityError):
        return 2, "the change conflicts with existing data (constraint) / 与现有数据冲突"
    return None


def _services(exc: BaseException) -> tuple[int, str] | None:
    mod = type(exc).__module__
    name = type(exc).__name__
    if mod.startswith("redis") and ("Connection" in name or "Timeout" in name):
        return 3, f"cannot reach Redis at {_redis_where()} / 无法连接 Redis"
    if mod.startswith(("kombu", "amqp")) or (mod.startswith("celery") and "Operational" in name):
        return 3, f"cannot reach the message broker at {_redis_where()} / 无法连接消息代理"
    return None


def describe(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line) for an error that reached the top of the CLI."""
    from newsletter.core.errors import ConfigError, NewsletterError

    if isinstance(exc, ConfigError):
        return 2, one_line(str(exc))
    if isinstance(exc, NewsletterError):
        return 2, one_line(str(exc))
    for probe in (_sqlalchemy, _services):
        found = probe(exc)
        if found is not None:
            return found
        cause = exc.__cause__ or exc.__context__
        if cause is not None:
            found = probe(cause)
            if found is not None:
                return found
    if isinstance(exc, IsADirectoryError):
        return 4, f"{exc.filename}: is a directory, a file was expected / 是目录，需要文件"
    if isinstance(exc, NotADirectoryError):
        return 4, f"{exc.filename}: a path component is a file, not a folder / 路径不是目录"
    if isinstance(exc, FileNotFoundError):
        return 4, f"{exc.filename}: no such file or folder / 文件或目录不存在"
    if isinstance(exc, PermissionError):
        return 4, f"{exc.filename}: permission denied / 没有权限"
    if isinstance(exc, ConnectionError):
        return 3, f"a service is unreachable: {one_line(str(exc))} / 无法连接服务"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return 4, f"{where}{exc.strerror or one_line(str(exc))} / 文件读写失败"
    if isinstance(exc, UnicodeError):
        return 2, f"input is not valid text: {one_line(str(exc))} / 输入不是有效文本"
    if isinstance(exc, ValueError) and "null" in str(exc).lower():
        return 2, "input contains a NUL byte / 输入含有 NUL 字节"
    if isinstance(exc, ValueError):
        return 2, f"invalid value: {one_line(str(exc))} / 输入值无效"
    return 1, (
        f"unexpected {type(exc).__name__}: {one_line(str(exc))} "
        "(run again with --debug for details) / 意外错误"
    )
