"""Console fixtures: an app on a fresh SQLite database with one user per role.

Migrating a database and hashing three argon2 passwords takes about two
seconds here, so it is done once per session into a template file that each
test copies.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from newsletter.config import Settings, reset_settings
from newsletter.db import dispose, upgrade
from newsletter.delivery.compiled import clear_cache
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
