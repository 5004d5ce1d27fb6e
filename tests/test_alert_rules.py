"""The PrometheusRule's alerts, unit-tested by promtool: each fires when, and only when, it should."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from edgecore.stack.promtool import PromtoolInstall
from edgecore.stack.settings import StackSettings

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "manifests" / "observability" / "rules.yaml"
TESTS = Path(__file__).parent / "alerts" / "rules_test.yaml"


def test_every_alert_rule_passes_its_promtool_unit_tests(tmp_path: Path) -> None:
    promtool = PromtoolInstall(StackSettings())
    promtool.install()
    groups = yaml.safe_load(RULES.read_text())["spec"]  # a PrometheusRule's spec is a rules file
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    shutil.copy(TESTS, tmp_path / "rules_test.yaml")

    result = promtool.test_rules(tmp_path / "rules_test.yaml")

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_rule_has_a_unit_test() -> None:
    rules = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    alerts = {rule["alert"] for group in rules for rule in group["rules"] if "alert" in rule}
    tests = yaml.safe_load(TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}

    assert alerts == tested
