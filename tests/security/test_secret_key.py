"""F4 and the secrets class: no process starts outside the embedded mode with the default key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from newsletter.core.config import DEFAULT_SECRET_KEY, Settings, reset_settings
from tests.conftest import PG_ADMIN, REDIS_URL, clean_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "newsletter"

PROCESSES = {
    "web": [str(BIN), "web", "--port", "1"],
    "worker": [str(BIN), "worker"],
    "beat": [str(BIN), "beat"],
    "ingest": [str(BIN), "ingest", "--once"],
    "pixel server": [str(BIN), "tracking", "serve-pixel", "--port", "1"],
    "bounces": [str(BIN), "bounces", "serve", "--port", "1"],
    "uvicorn factory": [
        sys.executable,
        "-m",
        "uvicorn",
        "newsletter.web.app:create_asgi",
        "--factory",
        "--port",
        "1",
    ],
}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = clean_env()
    env.update(
        NEWSLETTER_CONFIG=str(tmp_path / "absent.toml"),
        NEWSLETTER_VAR_DIR=str(tmp_path / "var"),
        NEWSLETTER_DATABASE_URL=PG_ADMIN.replace("postgresql://", "postgresql+psycopg://"),
        NEWSLETTER_BROKER_URL=REDIS_URL,
        NEWSLETTER_REDIS_URL=REDIS_URL,
        NEWSLETTER_REDIS_PREFIX="nltest:secret:",
    )
    env.update(extra)
    return env


@pytest.mark.parametrize("name", ["web", "uvicorn factory"])
def test_real_processes_refuse_to_start_without_a_key(tmp_path: Path, name: str) -> None:
    """As started in production (a new process, settings from the environment)."""
    out = subprocess.run(
        PROCESSES[name],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, out.stderr
    assert "NEWSLETTER_SECRET_KEY" in lines[0]
    assert "Traceback" not in out.stderr + out.stdout


CASES = [(name, None) for name in PROCESSES if name != "uvicorn factory"] + [
    (name, key) for name in ("web", "ingest") for key in (DEFAULT_SECRET_KEY, "short")
]


@pytest.mark.parametrize(("name", "key"), CASES)
def test_every_process_refuses_to_start_without_a_real_key(
    tmp_path: Path, name: str, key: str | None, capfd: pytest.CaptureFixture[str]
) -> None:
    """Each command that starts a long-running process, through the CLI's entry point."""
    from newsletter.cli.errors import run
    from newsletter.cli.main import app

    values: dict[str, object] = {
        "var_dir": tmp_path / "var",
        "database_url": PG_ADMIN.replace("postgresql://", "postgresql+psycopg://"),
        "broker_url": REDIS_URL,
        "redis_url": REDIS_URL,
    }
    if key is not None:
        values["secret_key"] = key
    reset_settings(Settings(**values))  # type: ignore[arg-type]
    try:
        code = run(app, PROCESSES[name][1:])
    finally:
        reset_settings(None)
    err = capfd.readouterr().err
    assert code != 0
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert "NEWSLETTER_SECRET_KEY" in lines[0] and "拒绝启动" in lines[0]
    assert "Traceback" not in err


def test_celery_started_directly_refuses_too(tmp_path: Path) -> None:
    """``celery -A workers.celery_app worker`` (not through our CLI) checks at worker_init."""
    import workers.celery_app as ca

    reset_settings(Settings(var_dir=tmp_path / "var", broker_url=REDIS_URL))
    try:
        with pytest.raises(SystemExit) as info:
            ca._check_worker_key()
        assert info.value.code == 2
        with pytest.raises(SystemExit):
            ca._check_beat_key()
    finally:
        reset_settings(None)


def test_embedded_mode_needs_no_setup(tmp_path: Path) -> None:
    """SQLite, no broker, no Redis: the built-in key is accepted (``make demo``)."""
    from newsletter.web.app import create_asgi

    s = Settings(var_dir=tmp_path / "var", database_url="", broker_url="", redis_url="")
    assert s.secret_key.get_secret_value() == DEFAULT_SECRET_KEY
    assert s.embedded_mode and s.secret_key_problem() is None
    reset_settings(s)
    try:
        assert create_asgi() is not None
    finally:
        reset_settings(None)


@pytest.mark.parametrize(
    "overrides",
    [
        {"database_url": "postgresql+psycopg://x@127.0.0.1/db"},
        {"broker_url": "redis://127.0.0.1:6379/0"},
        {"redis_url": "redis://127.0.0.1:6379/0"},
    ],
)
def test_any_service_leaves_the_embedded_mode(tmp_path: Path, overrides: dict[str, str]) -> None:
    s = Settings(var_dir=tmp_path / "var", **overrides)  # type: ignore[arg-type]
    assert not s.embedded_mode
    assert s.secret_key_problem() is not None
    good = s.model_copy(update={"secret_key": SecretStr("k3y-0123456789abcdef-fedcba-987654")})
    assert good.secret_key_problem() is None


GOOD = "k3y-" + "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"secret_key": " " * 16}, "NEWSLETTER_SECRET_KEY"),
        ({"secret_key": DEFAULT_SECRET_KEY + " "}, "NEWSLETTER_SECRET_KEY"),
        ({"secret_key": "x" + DEFAULT_SECRET_KEY}, "NEWSLETTER_SECRET_KEY"),
        ({"secret_key": " " + GOOD}, "NEWSLETTER_SECRET_KEY"),
        ({"secret_key": "ab" * 16}, "NEWSLETTER_SECRET_KEY"),
        ({"old_secret_keys": [DEFAULT_SECRET_KEY]}, "NEWSLETTER_OLD_SECRET_KEYS[0]"),
        ({"old_secret_keys": [GOOD[::-1], "short"]}, "NEWSLETTER_OLD_SECRET_KEYS[1]"),
        ({"metrics_token": "m"}, "NEWSLETTER_METRICS_TOKEN"),
        # issue 29: 32 bytes for keys, 24 for the metrics token, not mostly one character
        ({"secret_key": GOOD[:31]}, "NEWSLETTER_SECRET_KEY"),
        ({"secret_key": " " * 8 + GOOD[:31] + "\t"}, "NEWSLETTER_SECRET_KEY"),
        ({"old_secret_keys": [GOOD[::-1][:31]]}, "NEWSLETTER_OLD_SECRET_KEYS[0]"),
        ({"secret_key": "a" * 40 + "bcdefghij"}, "NEWSLETTER_SECRET_KEY"),
        ({"metrics_token": GOOD[:23]}, "NEWSLETTER_METRICS_TOKEN"),
        ({"webhook_password": "hunter2"}, "NEWSLETTER_WEBHOOK_PASSWORD"),
        ({"webhook_password": GOOD[:23]}, "NEWSLETTER_WEBHOOK_PASSWORD"),
        ({"webhook_password": "change-me-webhook-0123456789"}, "NEWSLETTER_WEBHOOK_PASSWORD"),
        # the placeholders deploy/systemd/newsletter.env.example prints
        ({"secret_key": "change-me-to-64-random-characters"}, "NEWSLETTER_SECRET_KEY"),
        ({"metrics_token": "Change-Me-too-0123456789abcdef"}, "NEWSLETTER_METRICS_TOKEN"),
    ],
)
def test_weak_secrets_are_refused_by_name(
    tmp_path: Path, overrides: dict[str, object], named: str
) -> None:
    """Whitespace, the built-in key in any disguise, a short or repetitive value: each is
    refused, for the signing key, every old key kept for rotation and the metrics token."""
    values: dict[str, object] = {
        "var_dir": tmp_path / "var",
        "broker_url": REDIS_URL,
        "secret_key": GOOD,
        **overrides,
    }
    s = Settings(**values)  # type: ignore[arg-type]
    problem = s.secret_key_problem()
    assert problem is not None and named in problem
    assert (
        Settings(
            var_dir=tmp_path / "var", broker_url=REDIS_URL, secret_key=GOOD
        ).secret_key_problem()
        is None
    )


def test_the_shortest_secrets_allowed(tmp_path: Path) -> None:
    """Exactly 32 bytes for a key (old keys too) and 24 for the metrics token pass; a
    multi-byte character counts its bytes."""
    ok = Settings(var_dir=tmp_path / "var", broker_url=REDIS_URL, secret_key=GOOD[:32],
                  old_secret_keys=[SecretStr(GOOD[::-1][:32])],
                  metrics_token=SecretStr(GOOD[:24]),
                  webhook_password=SecretStr(GOOD[::-1][:24]))  # type: ignore[arg-type]  # fmt: skip
    assert ok.secret_key_problem() is None
    wide = Settings(var_dir=tmp_path / "var", broker_url=REDIS_URL,
                    secret_key="密钥" + "0123456789abcdefghijklmnopq")  # 6 + 27 bytes  # fmt: skip
    assert wide.secret_key_problem() is None
    assert ok.model_copy(update={"secret_key": SecretStr("密钥0123456789abcdefghijklmno")}
                         ).secret_key_problem() is not None  # 31 bytes  # fmt: skip


def test_the_built_in_key_never_verifies_outside_the_embedded_mode(tmp_path: Path) -> None:
    """Kept as an old key by someone leaving a demo install, it still signs nothing valid."""
    s = Settings(var_dir=tmp_path / "var", broker_url=REDIS_URL, secret_key=GOOD,
                 old_secret_keys=[SecretStr(DEFAULT_SECRET_KEY)])  # fmt: skip
    assert DEFAULT_SECRET_KEY.encode() not in s.secrets()
    embedded = Settings(var_dir=tmp_path / "var", database_url="", broker_url="", redis_url="")
    assert embedded.secrets() == [DEFAULT_SECRET_KEY.encode()]


def test_dkim_keygen_writes_only_under_out(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from newsletter.cli.main import app

    out = tmp_path / "keys"
    for args in (["--selector", "a/../../b"], ["--selector", ".."], ["--domain", "x/../../y"]):
        opts = {"--selector": "nl2026", "--domain": "brief.example.cn"}
        opts.update(dict(zip(args[::2], args[1::2], strict=True)))
        r = CliRunner().invoke(app, ["dkim", "keygen", "--out", str(out),
                                     *[x for kv in opts.items() for x in kv]])  # fmt: skip
        assert r.exit_code == 2, r.output
    assert not any(tmp_path.rglob("*.pem"))
    ok = CliRunner().invoke(app, ["dkim", "keygen", "--out", str(out), "--selector", "nl2026",
                                  "--domain", "brief.example.cn"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert [p.parent for p in tmp_path.rglob("*.pem")] == [out]
