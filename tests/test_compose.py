"""docker-compose.yml is valid (checked statically: no Docker engine runs here)."""

from __future__ import annotations

import os
import subprocess

import yaml

from tests.conftest import ROOT


def test_compose_config_is_accepted() -> None:
    env = {**os.environ, "SECRET_KEY": "x"}
    out = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "mailpit"} <= set(services)
    for name in ("postgres", "redis", "web", "mailpit"):
        assert "healthcheck" in services[name], name
