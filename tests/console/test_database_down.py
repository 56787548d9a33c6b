"""While the database cannot be reached the console says so: 503 with the Chinese page
"数据库暂时不可用" (JSON ``{code, message}`` under /api), never a bare 500; and it
answers normally again once the database is back (issue 30).

PostgreSQL reached through a TCP forwarder the test closes (the port then refuses).
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from newsletter.core.config import reset_settings
from newsletter.core.db import dispose
from newsletter.web.app import create_app
from newsletter.web.console.services import create_user
from tests.console.helpers import PASSWORDS, login
from tests.forward import Forward, free_port


def test_console_answers_503_in_chinese_while_the_database_is_down(pg_settings) -> None:  # type: ignore[no-untyped-def]
    url = make_url(pg_settings.database_url)
    forward = Forward(free_port(), (url.host or "127.0.0.1", url.port or 5432))
    through = url.set(port=forward.port).render_as_string(hide_password=False)
    forward.open()
    reset_settings(pg_settings.model_copy(update={"database_url": through}))
    dispose()
    try:
        create_user("ops", "ops", PASSWORDS["ops"], "ops", display_name="运营")
        with TestClient(create_app(), base_url="https://testserver", follow_redirects=False) as c:
            login(c, "ops")
            assert c.get("/console/sends").status_code == 200
            assert c.get("/api/sends").status_code == 200

            forward.close()  # the database goes away, its connections with it
            r = c.get("/console/sends")
            assert r.status_code == 503, r.text[:300]
            assert "数据库暂时不可用" in r.text
            assert 'lang="zh' in r.text
            assert r.headers["retry-after"] == "30"
            c.cookies.set("nl_lang", "en")
            r = c.get("/console/sends")
            assert r.status_code == 503 and "Database temporarily unavailable" in r.text
            c.cookies.delete("nl_lang")
            r = c.get("/api/sends")
            assert r.status_code == 503
            body = r.json()
            assert body["code"] == "database_unavailable"
            assert body["message"].startswith("数据库暂时不可用")

            forward.open()  # back: the same session works again
            assert c.get("/console/sends").status_code == 200
            assert c.get("/api/sends").status_code == 200
    finally:
        forward.close()
        dispose()
