"""The files in deploy/: systemd units that systemd itself accepts, whose commands and
options exist, a target that starts them all, and an environment file whose every
setting is one the code reads."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli.main import app
from newsletter.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "deploy" / "systemd"
BIN = Path(sys.executable).parent / "newsletter"


def _units() -> list[Path]:
    return sorted(UNITS.glob("*.service"))


def test_systemd_accepts_every_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of Debian's systemd package"
    (tmp_path / "env").write_text("", encoding="utf-8")
    names = []
    for unit in [*_units(), UNITS / "newsletter.target"]:
        text = (
            unit.read_text(encoding="utf-8")
            .replace("/srv/newsletter/.venv/bin/newsletter", str(BIN))
            .replace("/srv/newsletter", str(tmp_path))
            .replace("/etc/newsletter/newsletter.env", str(tmp_path / "env"))
        )
        name = unit.name.replace("@.service", "@1.service")
        (tmp_path / name).write_text(text, encoding="utf-8")
        names.append(str(tmp_path / name))
    r = subprocess.run(
        [analyze, "verify", "--man=no", *names], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in r.stderr.splitlines()
        if ("newsletter" in line and "Failed to" not in line) or "Unknown" in line
    ]
    assert r.returncode == 0 and not problems, r.stderr


@pytest.mark.parametrize("unit", _units(), ids=lambda p: p.name)
def test_each_unit_runs_a_real_command(unit: Path) -> None:
    m = re.search(r"^ExecStart=\S+/newsletter (.+)$", unit.read_text(encoding="utf-8"), re.M)
    assert m, unit.name
    r = CliRunner().invoke(app, [*m.group(1).split(), "--help"])
    assert r.exit_code == 0, (unit.name, r.output)


def test_the_target_starts_every_process() -> None:
    target = (UNITS / "newsletter.target").read_text(encoding="utf-8")
    for unit in _units():
        name = unit.name.replace("@.service", "@1.service")
        assert name in target, name


def test_every_environment_setting_exists() -> None:
    fields = set(Settings.model_fields)
    for line in (UNITS / "newsletter.env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key = line.split("=", 1)[0]
            assert key.startswith("NEWSLETTER_") and key[11:].lower() in fields, key


def _metric_names() -> set[str]:
    """Every metric family the processes expose (counters with their _total, histograms
    with _bucket/_sum/_count), from the code itself."""
    from prometheus_client.parser import text_string_to_metric_families

    from newsletter.core import telemetry as telemetry

    names: set[str] = set()
    for fam in text_string_to_metric_families(telemetry.render().decode()):
        names.add(fam.name)
        names.update(s.name for s in fam.samples)
        names.update(fam.name + suffix for suffix in ("_total", "_bucket", "_sum", "_count"))
    import inspect

    from newsletter.reports import metrics as ledger

    for module in (telemetry, ledger):  # the ledger's gauges are read at each scrape
        names.update(re.findall(r'"(newsletter_[a-z_]+)"', inspect.getsource(module)))
    return names


def _exprs_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\bnewsletter_[a-z_]+\b", expr))


def test_dashboard_and_alerts_use_only_real_metrics() -> None:
    import json

    import yaml

    names = _metric_names()
    dash = json.loads(
        (ROOT / "deploy" / "grafana" / "newsletter-dashboard.json").read_text("utf-8")
    )
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text("utf-8"))
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert len(exprs) >= 15 and len(alerts) >= 8
    for r in alerts:
        assert r["alert"] and r["expr"] and r["labels"]["severity"] in ("page", "ticket")
        exprs.append(r["expr"])
    used: set[str] = set()
    for e in exprs:
        used |= _exprs_metrics(e)
        assert e.count("(") == e.count(")"), e
    assert used and used <= names, sorted(used - names)
