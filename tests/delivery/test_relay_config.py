"""The relay configuration: any input gives either relays or one clear line (en / 中文),
never a traceback, and never echoes a password."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.core.config import Settings, reset_settings
from newsletter.delivery.relay_config import (
    RelayConfig,
    RelayConfigError,
    load_relays,
    parse_relays,
)

SECRET = "hunter2-do-not-print"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
relay_fields = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=10), st.sampled_from(["a", "b", "main", "Bad Name"])),
        "host": st.one_of(st.text(max_size=10), st.just("127.0.0.1"), st.integers()),
        "port": st.one_of(st.integers(-5, 70000), st.text(max_size=5)),
        "tls": st.one_of(st.sampled_from(["none", "starttls", "ssl", "tls"]), st.integers()),
        "username": st.text(max_size=8),
        "password": st.just(SECRET),
        "rate": st.one_of(st.floats(allow_nan=False), st.integers(-3, 10)),
        "weight": st.one_of(st.floats(allow_nan=False), st.integers(-3, 10)),
        "from_domains": st.lists(st.text(alphabet=string.ascii_lowercase + ".-", max_size=12)),
        "publications": st.lists(st.text(max_size=6), max_size=2),
        "extra": json_values,
    },
)


def _check(raw: Any) -> None:
    try:
        relays = parse_relays(raw)
    except RelayConfigError as exc:
        line = str(exc)
        assert "\n" not in line and "\r" not in line
        assert line.startswith("NEWSLETTER_RELAYS: ") and "发信服务器" in line
        assert SECRET not in line
        assert len(line) < 800
        return
    assert relays and all(isinstance(r, RelayConfig) for r in relays)
    assert len({r.name for r in relays}) == len(relays)
    assert any(r.general for r in relays)
    for r in relays:
        assert SECRET not in json.dumps(r.public())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_any_text_gives_relays_or_one_clear_line(raw: str) -> None:
    _check(raw)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_shape_gives_relays_or_one_clear_line(data: Any) -> None:
    _check(data)
    _check(json.dumps(data))


@settings(max_examples=400, deadline=None)
@given(st.lists(relay_fields, min_size=0, max_size=4))
def test_relay_like_objects_give_relays_or_one_clear_line(items: list[dict[str, Any]]) -> None:
    _check(items)
    _check(json.dumps(items))
    _check({str(i): {k: v for k, v in it.items() if k != "name"} for i, it in enumerate(items)})


def test_valid_forms_json_toml_yaml_and_mapping(tmp_path: Path) -> None:
    items = [
        {"name": "main", "host": "smtp.example.cn", "port": 587, "tls": "starttls",
         "username": "u", "password": SECRET, "weight": 2, "rate": 50},
        {"name": "brand", "host": "10.0.0.5", "from_domains": ["Brief.Example.cn"]},
    ]  # fmt: skip
    assert [r.name for r in parse_relays(json.dumps(items))] == ["main", "brand"]
    (tmp_path / "relays.json").write_text(json.dumps({"relays": items}))
    assert len(parse_relays(str(tmp_path / "relays.json"))) == 2
    (tmp_path / "relays.toml").write_text(
        '[[relays]]\nname = "main"\nhost = "smtp.example.cn"\nport = 465\ntls = "ssl"\n'
    )
    assert parse_relays(str(tmp_path / "relays.toml"))[0].tls == "ssl"
    (tmp_path / "relays.yaml").write_text("main:\n  host: smtp.example.cn\n  weight: 3\n")
    assert parse_relays(str(tmp_path / "relays.yaml"))[0].weight == 3
    brand = parse_relays(items)[1]
    assert brand.from_domains == ("brief.example.cn",) and not brand.general
    assert "password" not in brand.public() and SECRET not in repr(parse_relays(items)[0])


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ('[{"name": "a", "host": "h", "port": 99999}]', "port"),
        ('[{"name": "a", "host": "h", "tls": "maybe"}]', "tls"),
        ('[{"name": "a", "host": "h"}, {"name": "a", "host": "i"}]', "used twice"),
        ('[{"name": "a", "host": "h", "from_domains": ["x.org"]}]', "at least one"),
        ('[{"name": "a", "host": "h", "weight": 0}]', "weight"),
        ("[{'name': 'a'}]", "not valid JSON"),
        ("/etc/relays.ini", ".json, .toml or .yaml"),
        ('[{"name": "a", "password": "' + SECRET + '"}]', "host"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(raw: str, fragment: str) -> None:
    with pytest.raises(RelayConfigError) as info:
        parse_relays(raw)
    assert fragment in str(info.value) and SECRET not in str(info.value)


def test_single_relay_settings_are_the_default_relay(tmp_path: Path) -> None:
    s = Settings(
        var_dir=tmp_path,
        smtp_host="mx.example.cn",
        smtp_port=2525,
        smtp_username="u",
        smtp_password=SECRET,
        smtp_starttls=True,
    )  # type: ignore[arg-type]
    (relay,) = load_relays(s)
    assert (relay.name, relay.host, relay.port, relay.tls) == (
        "default",
        "mx.example.cn",
        2525,
        "starttls",
    )
    assert relay.password.get_secret_value() == SECRET


def test_cli_refuses_bad_config_with_one_line_and_never_shows_passwords(
    sqlite_settings: Settings,
) -> None:
    runner = CliRunner()
    bad = sqlite_settings.model_copy(
        update={"relays": '[{"name": "a", "host": "h", "port": 0, "password": "' + SECRET + '"}]'}
    )
    reset_settings(bad)
    import contextlib
    import io

    from newsletter.cli.errors import run

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run(app, ["relays", "list"])
    assert code == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and "port" in lines[0] and "发信服务器" in lines[0]
    assert SECRET not in err.getvalue() and "Traceback" not in err.getvalue()

    good = sqlite_settings.model_copy(
        update={"relays": [{"name": "a", "host": "h", "password": SECRET}]}
    )
    reset_settings(good)
    for args in (["relays", "list"], ["relays", "list", "--json"], ["relays", "status"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        assert SECRET not in r.output
    assert SECRET not in json.dumps(good.public_dict(), default=str)


def test_the_default_relay_follows_the_settings_values_not_the_object(tmp_path: Path) -> None:
    """A cache keyed by the settings object's id served a dead test's port (ids are reused)."""
    for port in (2001, 2002, 2003):
        s = Settings(var_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=port)
        assert load_relays(s)[0].port == port
        del s


@pytest.mark.parametrize(
    "update",
    [
        {"relays": '[{"name": "a", "host": "h", "tls": "yes", "password": "' + SECRET + '"}]'},
        {"warmup_domains": {"brief.example.cn": {"schedule": [100, -5]}}},
        {"warmup_domains": {"brief.example.cn": {"shares": {"gmail.com": 3}}}},
    ],
)
def test_a_worker_refuses_to_start_with_bad_relays_or_warmup(
    sqlite_settings: Settings, update: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from workers.celery_app import _refuse_bad_relays

    reset_settings(sqlite_settings.model_copy(update=update))
    with pytest.raises(SystemExit) as info:
        _refuse_bad_relays()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "refusing to start" in err
    assert SECRET not in err and "Traceback" not in err
