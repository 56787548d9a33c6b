"""docker-compose.yml is valid (checked statically: no Docker engine runs here)."""

from __future__ import annotations

import os
import subprocess

import yaml

from tests.conftest import ROOT


def test_compose_config_is_accepted() -> None:
    env = {
        **os.environ,
        "SECRET_KEY": "x",
        "FROM_NAME": "政策周报",
        "FROM_ADDRESS": "news@brief.example.cn",
        "BOUNCE_DOMAIN": "brief.example.cn",
        "LIST_ID_DOMAIN": "brief.example.cn",
        "POSTAL_ADDRESS": "北京市海淀区示例路 1 号",
    }
    out = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert {"postgres", "redis", "web", "pixel", "proxy", "worker", "beat", "mailpit"} <= set(
        services
    )
    for name in ("postgres", "redis", "web", "pixel", "proxy", "mailpit"):
        assert "healthcheck" in services[name], name


def test_proxy_routes_the_pixel_to_the_pixel_server() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "location /o/ {\n        proxy_pass http://pixel;" in conf
    assert "server pixel:8001;" in conf and "server web:8000;" in conf
    assert "X-Forwarded-For $remote_addr;" in conf  # overwritten, never client-supplied
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "serve-pixel" in compose["pixel"]["command"] and "8001" in compose["pixel"]["command"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in compose["proxy"]["volumes"]


def test_compose_refuses_to_start_without_a_sender_identity() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("FROM_ADDRESS",)}
    env["SECRET_KEY"] = "x"
    out = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode != 0 and "FROM" in out.stderr
