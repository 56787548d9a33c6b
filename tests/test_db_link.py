"""Every PostgreSQL connection has deadlines on its link (issue 30: every wait has a
deadline): keep-alives and TCP_USER_TIMEOUT, read back from the socket itself."""

from __future__ import annotations

import socket

from sqlalchemy.engine import make_url

from newsletter.core import db
from newsletter.core.config import Settings


def _opts(sock: socket.socket) -> tuple[int, int, int, int, int]:
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
    )


def _link_of(url: str) -> tuple[int, int, int, int, int]:
    eng = db.engine(url)
    try:
        with eng.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            with socket.socket(fileno=raw.fileno()) as sock:
                try:
                    return _opts(sock)
                finally:
                    sock.detach()  # the descriptor stays psycopg's
    finally:
        eng.dispose()
        db._engines.pop(url, None)


def test_pool_connections_find_a_silent_link_dead_within_about_a_minute(
    pg_settings: Settings,
) -> None:
    url = make_url(pg_settings.database_url).set(host="127.0.0.1")
    got = _link_of(url.render_as_string(hide_password=False))
    assert got == (1, 30, 10, 3, 60_000)


def test_the_database_url_overrides_a_link_setting(pg_settings: Settings) -> None:
    url = make_url(pg_settings.database_url).set(host="127.0.0.1")
    url = url.update_query_dict({"keepalives_idle": "7"})
    got = _link_of(url.render_as_string(hide_password=False))
    assert got[:2] == (1, 7)
    assert db.link_deadlines("postgresql+psycopg://x/y?tcp_user_timeout=5")["keepalives"] == 1
    assert "tcp_user_timeout" not in db.link_deadlines(
        "postgresql+psycopg://x/y?tcp_user_timeout=5"
    )
