"""Console fixtures: an app on a fresh SQLite database with one user per role.

Migrating a database and hashing three argon2 passwords takes about two
seconds here, so it is done once per session into a template file that each
test copies.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from newsletter.core.config import Settings, reset_settings
from newsletter.core.db import dispose, upgrade
from newsletter.delivery.compiled import clear_cache
from newsletter.devtools.sink import SinkHandler, free_port
from newsletter.web.app import create_app
from newsletter.web.console.services import create_user
from tests.conftest import make_settings
from tests.console.helpers import PASSWORDS

NAMES = {"admin": "管理员", "ops": "运营小王", "editor": "编辑小周", "marketing": "市场小李"}


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("console-template")
    s = make_settings(base)
    reset_settings(s)
    dispose()
    try:
        upgrade()
        for role, pw in PASSWORDS.items():
            create_user("test", role, pw, role, display_name=NAMES[role])
    finally:
        dispose()
        reset_settings(None)
    return base / "var" / "newsletter.db"


@pytest.fixture
def console_settings(tmp_path: Path, template_db: Path) -> Iterator[Settings]:
    s = make_settings(tmp_path)
    s.var_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template_db, s.var_dir / "newsletter.db")
    reset_settings(s)
    dispose()
    clear_cache()
    yield s
    reset_settings(None)
    dispose()
    clear_cache()


@pytest.fixture
def users(console_settings: Settings) -> dict[str, str]:
    return PASSWORDS


@pytest.fixture
def client(users: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(), base_url="https://testserver", follow_redirects=False) as c:
        yield c


@pytest.fixture
def server(
    tmp_path: Path, template_db: Path, smtp_sink: tuple[int, SinkHandler]
) -> Iterator[tuple[str, Settings, SinkHandler]]:
    """The app served by uvicorn on a free port (for the browser tests), on a fresh database."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    s = make_settings(tmp_path, base_url=base, smtp_host="127.0.0.1", smtp_port=smtp_sink[0])
    with serve(s, port, template_db):
        yield base, s, smtp_sink[1]


@contextmanager
def serve(s: Settings, port: int, template_db: Path) -> Iterator[None]:
    """Run the app with settings ``s`` on ``port`` (uvicorn, in a thread), on a copy of
    the template database."""
    s.var_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template_db, s.var_dir / "newsletter.db")
    reset_settings(s)
    dispose()
    clear_cache()
    srv = uvicorn.Server(
        uvicorn.Config(
            create_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 10
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started
    try:
        yield
    finally:
        srv.should_exit = True
        t.join(5)
        reset_settings(None)
        dispose()
        clear_cache()
