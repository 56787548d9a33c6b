"""The dispatch seam: in process in the embedded mode, the Celery dispatcher that
workers/ registers (found by entry point) with a broker; newsletter/ never imports
workers/ (import-linter runs in CI)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from newsletter.core.config import reset_settings
from newsletter.core.dispatch import dispatcher
from newsletter.core.errors import ServiceUnavailable
from newsletter.devtools.sink import free_port
from newsletter.runtime.inline import InProcess

ROOT = Path(__file__).resolve().parents[1]


def test_embedded_runs_in_process(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(dispatcher(), InProcess)


def test_a_broker_gets_the_registered_celery_dispatcher(sqlite_settings, redis_url) -> None:  # type: ignore[no-untyped-def]
    reset_settings(sqlite_settings.model_copy(update={"broker_url": redis_url}))
    d = dispatcher()
    assert type(d).__name__ == "CeleryDispatcher" and type(d).__module__ == "workers.dispatch"


def test_a_broker_that_is_down_is_one_clear_error(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    from workers.celery_app import app, configure

    down = f"redis://127.0.0.1:{free_port()}/0"
    reset_settings(sqlite_settings.model_copy(update={"broker_url": down}))
    configure(app)
    app.conf.broker_connection_retry = False
    app.conf.broker_transport_options = {"max_retries": 0}
    try:
        with pytest.raises(ServiceUnavailable, match="broker is unreachable"):
            dispatcher().start_send(1)
    finally:
        reset_settings(sqlite_settings)
        configure(app)


def test_newsletter_never_imports_workers() -> None:
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "lint-imports")], capture_output=True,
                         text=True, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:]
    assert "newsletter never imports workers" in out.stdout and "KEPT" in out.stdout
