"""Engine, sessions and migrations.

One engine per process and database URL.  SQLite (the embedded mode) gets WAL,
foreign keys and a busy timeout so that the web app, the in-process runner and
the CLI can share the file.  ``upgrade()`` applies the Alembic migrations in
``migrations/``; it is what ``newsletter db upgrade`` runs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from newsletter.core import queries
from newsletter.core.config import get_settings
from newsletter.core.resources import resource_path

__all__ = [
    "dispose",
    "engine",
    "is_postgres",
    "probe",
    "lost_connection",
    "session_scope",
    "sessionmaker_for",
    "upgrade",
]

_engines: dict[str, Engine] = {}
_makers: dict[str, sessionmaker[Session]] = {}
# Web servers run request handlers in threads: creation and disposal take turns.
_lock = threading.RLock()

MIGRATIONS_DIR = resource_path("migrations")


def _json(value: Any) -> str:
    # Keep CJK as UTF-8: SQLite's JSON path lookups do not match \uXXXX-escaped keys.
    return json.dumps(value, ensure_ascii=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    for pragma in queries.SQLITE_PRAGMAS:
        cur.execute(pragma)
    cur.close()


def engine(url: str | None = None) -> Engine:
    url = url or get_settings().db_url
    eng = _engines.get(url)
    if eng is not None:
        return eng
    with _lock:
        eng = _engines.get(url)
        if eng is not None:
            return eng
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            eng = create_engine(url, connect_args={"timeout": 30}, json_serializer=_json)
            event.listen(eng, "connect", _sqlite_pragmas)
        else:
            eng = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=10,
                json_serializer=_json,
                connect_args=link_deadlines(url),
            )
        _engines[url] = eng
    return eng


#: libpq's TCP settings for every PostgreSQL connection (RFC 1122 keep-alives and Linux's
#: TCP_USER_TIMEOUT): a link that goes silent (a partition, a host that vanished without a
#: reset) is found dead within about a minute instead of after the kernel's two hours,
#: so a worker waiting on a reply that will never come gets an error, not a hang.
LINK_DEADLINES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # ms: unacknowledged data for this long drops the link
    "connect_timeout": 10,  # s: a server that never answers the connect
}


def link_deadlines(url: str) -> dict[str, Any]:
    """``LINK_DEADLINES`` less any the database URL sets itself (the URL wins)."""
    from sqlalchemy.engine import make_url

    given = make_url(url).query
    return {k: v for k, v in LINK_DEADLINES.items() if k not in given}


def lost_connection(exc: BaseException) -> bool:
    """Whether a database error means the connection is gone (server restart, failover, a
    terminated backend, a broken link), as opposed to an error in the statement."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if getattr(exc, "connection_invalidated", False) or isinstance(
        exc, OperationalError | InterfaceError
    ):
        return True
    text = str(exc).lower()
    return "server closed the connection" in text or "terminating connection" in text


_probes: dict[str, Engine] = {}


def probe(timeout: float = 3.0, url: str | None = None) -> str | None:
    """Whether the database answers now, on a connection of its own (never the pool's, so a
    parent process about to fork holds none): None when it does, else why not, one line."""
    from sqlalchemy import text
    from sqlalchemy.pool import NullPool

    url = url or get_settings().db_url
    with _lock:
        eng = _probes.get(url)
        if eng is None:
            args = (
                {}
                if url.startswith("sqlite")
                else {**link_deadlines(url), "connect_timeout": max(1, int(timeout))}
            )
            eng = _probes[url] = create_engine(url, poolclass=NullPool, connect_args=args)
    try:
        with eng.connect() as conn:
            conn.execute(text(queries.PING))
    except Exception as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"{type(exc).__name__}: {first[0] if first else ''}"[:300]
    return None


def is_postgres(url: str | None = None) -> bool:
    return engine(url).dialect.name == "postgresql"


def sessionmaker_for(url: str | None = None) -> sessionmaker[Session]:
    url = url or get_settings().db_url
    mk = _makers.get(url)
    if mk is None:
        with _lock:
            mk = _makers.get(url)
            if mk is None:
                mk = sessionmaker(bind=engine(url), expire_on_commit=False)
                _makers[url] = mk
    return mk


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = sessionmaker_for(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().db_url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    from alembic import command

    engine(url)  # creates the SQLite file's directory when needed
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def dispose() -> None:
    with _lock:
        engines = [*_engines.values(), *_probes.values()]
        _engines.clear()
        _makers.clear()
        _probes.clear()
    for eng in engines:
        eng.dispose()
