"""The generated Prometheus rules: valid YAML, accepted by promtool, unit-tested rule by rule."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from realservers import require_binary
from rules_cases import promtool_test_files

from mlprobe import _yaml
from mlprobe._alerts import rule_file, rule_file_yaml
from mlprobe._cli import main
from mlprobe._rules import RuleParams
from mlprobe.errors import ConfigurationError

CUSTOM = RuleParams(drift_range="30m", rate_range="2m", psi_warning=0.15, psi_critical=0.3,
                    by=("cluster",), selector='job="churn",env!~"dev.*"', for_drift="5m")


def all_rules(params: RuleParams | None = None) -> list[dict[str, Any]]:
    return [r for g in rule_file(params)["groups"] for r in g["rules"]]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = require_binary("promtool")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def write_suite(tmp_path: Path, rules_text: str) -> list[str]:
    (tmp_path / "rules.yml").write_text(rules_text)
    names = []
    for stem, document in promtool_test_files("rules.yml", all_rules()).items():
        (tmp_path / f"{stem}.test.yml").write_text(_yaml.dump(document))
        names.append(f"{stem}.test.yml")
    return names


@pytest.mark.parametrize("params", [RuleParams(), CUSTOM], ids=["defaults", "custom"])
def test_rule_yaml_parses_back_to_the_document(params):
    """The hand-written YAML emitter writes exactly the generated document (PyYAML reads it)."""
    assert yaml.safe_load(rule_file_yaml(params)) == rule_file(params)


@pytest.mark.real_prometheus
@pytest.mark.parametrize("params", [RuleParams(), CUSTOM], ids=["defaults", "custom"])
def test_promtool_accepts_the_rules(tmp_path, params):
    """promtool check rules accepts the file, with default and with custom parameters."""
    (tmp_path / "rules.yml").write_text(rule_file_yaml(params))
    result = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(all_rules(params))} rules found" in result.stdout


def test_every_rule_is_documented_and_labelled():
    """Every alert has for:, a warning/critical severity, a summary and a description that
    says what to check first; recorded names follow level:metric:operation."""
    for rule in all_rules():
        if "alert" in rule:
            assert rule["for"] and rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"]
            assert "Check first:" in rule["annotations"]["description"], rule["alert"]
        else:
            assert rule["record"].startswith("mlprobe:") and rule["record"].count(":") == 2


@pytest.mark.real_prometheus
def test_promtool_unit_tests_pass_and_cover_every_rule(tmp_path):
    """promtool test rules passes, and every recording rule has a value test while every alert
    has a case where it fires and one where it does not."""
    names = write_suite(tmp_path, rule_file_yaml())
    result = promtool("test", "rules", *names, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    groups = [g for stem in names for g in yaml.safe_load((tmp_path / stem).read_text())["tests"]]
    exprs = " ".join(t["expr"] for g in groups for t in g.get("promql_expr_test", []))
    alert_tests = [t for g in groups for t in g.get("alert_rule_test", [])]
    for rule in all_rules():
        if "record" in rule:
            assert rule["record"] in exprs, f"no promql_expr_test for {rule['record']}"
        else:
            name, severity = rule["alert"], rule["labels"]["severity"]
            cases = [t for t in alert_tests if t["alertname"] == name]
            assert any(not t["exp_alerts"] for t in cases), f"{name}: no quiet case"
            assert any(a["exp_labels"]["severity"] == severity
                       for t in cases for a in t["exp_alerts"]), f"{name} {severity} never fires"


@pytest.mark.real_prometheus
@pytest.mark.parametrize("wrong, right", [
    ("max by (model, model_version, profile, feature, bin) (max_over_time(",
     "sum by (model, model_version, profile, feature, bin) (max_over_time("),
    ("clamp_min(mlprobe:feature_reference_ratio:max1h, 0.0001)",
     "mlprobe:feature_reference_ratio:max1h"),
    ("(increase(mlprobe_feature_bin_total[1h]))",
     "(delta(mlprobe_feature_bin_total[1h]))"),
    ("sum by (model, model_version, profile, feature, bin) (increase(mlprobe_feature_bin_total[1h]",
     "sum by (model, model_version, feature, bin) (increase(mlprobe_feature_bin_total[1h]"),
], ids=["summed-reference", "no-epsilon", "no-reset-handling", "profiles-mixed"])
def test_unit_tests_catch_a_naive_fleet_rule(tmp_path, wrong, right):
    """Each pitfall the issue lists, put back into the PSI rules, fails the promtool tests."""
    text = rule_file_yaml()
    assert wrong in text
    names = write_suite(tmp_path, text.replace(wrong, right))
    result = promtool("test", "rules", names[0], cwd=tmp_path)
    assert result.returncode == 1 and "FAILED" in result.stdout + result.stderr, result.stdout[-2000:]


def test_cli_rules_prints_the_rules_with_the_given_settings(capsys, tmp_path):
    """mlprobe rules prints the rule file; options change ranges, thresholds and groupings,
    -o writes a file, and a bad value is a one-line error (exit 2)."""
    assert main(["rules", "--drift-range", "30m", "--psi-critical", "0.3", "--by", "cluster"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == rule_file(RuleParams(drift_range="30m", psi_critical=0.3,
                                           by=("cluster",)))
    fleet = next(r for g in printed["groups"] for r in g["rules"]
                 if r.get("alert") == "MlprobeFleetFeatureDrift"
                 and r["labels"]["severity"] == "critical")
    assert "mlprobe:feature_psi:increase30m" in fleet["expr"] and ">= 0.3" in fleet["expr"]
    assert main(["rules", "-o", str(tmp_path / "r.yml")]) == 0
    assert yaml.safe_load((tmp_path / "r.yml").read_text()) == rule_file()
    assert main(["rules", "--rate-range", "five minutes"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--rate-range must be a Prometheus duration" in err


@pytest.mark.parametrize("kwargs, field", [
    ({"drift_range": "1 hour"}, "drift_range"), ({"psi_warning": 0.3}, "psi_warning"),
    ({"latency_warning": 0.9}, "latency_warning"), ({"by": ("model",)}, "by"),
    ({"selector": "job=churn"}, "selector"), ({"error_critical": 2.0}, "error_warning")])
def test_bad_parameters_fail_at_construction(kwargs, field):
    """A malformed or out-of-range parameter is a ConfigurationError naming the field."""
    with pytest.raises(ConfigurationError, match=f"RuleParams.{field}"):
        RuleParams(**kwargs)
