"""promtool unit tests for the generated rules: input series, expected recorded values and alerts.

Three test files, by the time scale they need: ``fleet`` (1-minute series over 2 hours: fleet
drift, per-replica statuses, errors, schema, traffic, profiles), ``latency`` (2-minute series over
26 hours: the 1-day latency baseline) and ``gradual`` (hourly series over 8 days: last day vs the
week before). Expected drift values are computed here with ``mlprobe.stats`` from the exact
counts of the series, so the rules are checked against the library's definitions; they are
compared after ``round(x, 1e-9)`` in PromQL and the same rounding in Python (promtool compares
floats exactly).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from mlprobe import stats
from mlprobe._rules import RuleNames, RuleParams

BASE = 'model="m",model_version="1"'
ROUND = 1e-9


def rounded(x: float) -> float:
    """What PromQL's ``round(x, 1e-9)`` returns (Go: floor(x * (1/to) + 0.5) / (1/to))."""
    inverse = 1.0 / ROUND
    return math.floor(x * inverse + 0.5) / inverse


def ramp(*segments: tuple[float, int], start: float = 0) -> str:
    """promtool series values: ``(increment per step, steps)`` segments, continuous."""
    parts, value = [], start
    for i, (inc, steps) in enumerate(segments):
        parts.append(f"{value:g}+{inc:g}x{steps}" if i == 0 else
                     f"{value + inc:g}+{inc:g}x{steps - 1}")
        value += inc * steps
    return " ".join(parts)


def series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def labels_text(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def expand(template: str, labels: dict[str, str]) -> str:
    """Expand the ``{{ $labels.NAME }}`` templates the generated annotations use."""
    out = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    assert "{{" not in out, f"unexpanded template in {template!r}"
    return out


def exp_alerts(rules: list[dict[str, Any]], name: str,
               cases: list[tuple[str, dict[str, str]]]) -> list[dict[str, Any]]:
    """Expected alerts of ``name``: ``(severity, labels)`` pairs, annotations expanded."""
    out = []
    for severity, labels in cases:
        rule = next(r for r in rules if r.get("alert") == name
                    and r["labels"]["severity"] == severity)
        full = {**labels, "severity": severity}
        out.append({"exp_labels": full, "exp_annotations": {
            k: expand(v, full) for k, v in rule["annotations"].items()}})
    return out


def psi_of(ref: list[float], counts: list[float]) -> float:
    cur = np.asarray(counts, dtype=float) / sum(counts)
    return stats.psi(np.asarray(ref), cur)


def js_of(ref: list[float], counts: list[float]) -> float:
    return stats.jensen_shannon(np.asarray(ref), np.asarray(counts, dtype=float), 2.0)


def linf_of(ref: list[float], counts: list[float]) -> float:
    cur = np.asarray(counts, dtype=float) / sum(counts)
    return float(np.max(np.abs(cur - np.asarray(ref))))


# -- fleet: 2 hours of 1-minute samples ------------------------------------------------------

STEPS = 120
FLAT = f"0x{STEPS}"


def per_minute(rate: float, start_at: int = 0) -> str:
    """A counter flat until minute ``start_at``, then growing by ``rate`` a minute."""
    if start_at == 0:
        return f"0+{rate:g}x{STEPS}"
    return ramp((0, start_at), (rate, STEPS - start_at))


# feature -> (instance, profile) -> {bin: (reference share, counter values)}
RESET = "0+10x90 10+10x29"  # replica a restarts at minute 90: its counters start again at 0
FLEET_BINS: dict[str, dict[tuple[str, str], dict[str, tuple[float, str]]]] = {
    "x": {("a", "p1"): {"0": (0.5, RESET), "1": (0.5, RESET)},
          ("b", "p1"): {"0": (0.5, per_minute(30)), "1": (0.5, per_minute(10))},
          # another profile of the same model version: its own PSI, never mixed into p1's
          ("c", "p2"): {"0": (0.9, per_minute(100)), "1": (0.1, FLAT)}},
    "c": {("a", "p1"): {"u": (0.5, per_minute(10)), "v": (0.5, per_minute(10)),
                        "__other__": (0.0, FLAT)},
          ("b", "p1"): {"u": (0.5, per_minute(10)), "v": (0.5, per_minute(10)),
                        "__other__": (0.0, per_minute(5))}},
    "z": {("a", "p1"): {"0": (0.5, FLAT), "1": (0.5, FLAT)}},  # no traffic: no PSI at all
    "small": {("a", "p1"): {"0": (0.5, per_minute(1)), "1": (0.5, FLAT)}},  # < min_count
    "__prediction__": {("a", "p1"): {"0": (0.5, per_minute(20)), "1": (0.5, FLAT)},
                       ("b", "p1"): {"0": (0.5, per_minute(20)), "1": (0.5, FLAT)}},
}
# Values of each bin over the last hour at minute 120 (what increase() must find).
HOUR_COUNTS = {
    "x": {"p1": {"0": 600 + 1800, "1": 600 + 600}, "p2": {"0": 6000, "1": 0}},
    "c": {"p1": {"u": 1200, "v": 1200, "__other__": 300}},
    "small": {"p1": {"0": 60, "1": 0}},
    "__prediction__": {"p1": {"0": 2400, "1": 0}},
}


def _fleet_series() -> list[dict[str, str]]:
    out = []
    for feature, replicas in FLEET_BINS.items():
        for (instance, profile), bins in replicas.items():
            for b, (share, values) in bins.items():
                labels = f'{BASE},profile="{profile}",feature="{feature}",bin="{b}",' \
                         f'instance="{instance}"'
                out.append(series("mlprobe_feature_bin_total", labels, values))
                out.append(series("mlprobe_feature_reference_ratio", labels,
                                  f"{share!r}x{STEPS}"))
    status = [("a", "x", "1x120"), ("b", "x", "2x120"), ("a", "y", "0x120"),
              ("a", "__prediction__", "0x30 2x89")]
    out += [series("mlprobe_feature_drift_status", f'{BASE},feature="{f}",instance="{i}"', v)
            for i, f, v in status]
    quality = [("a", "x", "0x60 1x59"), ("b", "c", "2x120"), ("a", "y", "0x120")]
    out += [series("mlprobe_feature_quality_status", f'{BASE},feature="{f}",instance="{i}"', v)
            for i, f, v in quality]
    out += [
        series("mlprobe_schema_violations_total", f'{BASE},kind="missing_feature",instance="a"',
               per_minute(1, start_at=100)),
        series("mlprobe_schema_violations_total", f'{BASE},kind="ragged_row",instance="b"',
               per_minute(50, start_at=100)),
        series("mlprobe_batch_rows_sum", f'{BASE},instance="a"', per_minute(100)),
        series("mlprobe_batch_rows_sum", f'{BASE},instance="b"', per_minute(100)),
        series("mlprobe_internal_errors_total", 'instance="a",job="app"',
               per_minute(1, start_at=100)),
        series("mlprobe_internal_errors_total", 'instance="b",job="app"', FLAT),
        # model m v1: traffic stops at minute 60 (no traffic); m v2 and n v1 keep serving
        series("mlprobe_predictions_total", f'{BASE},outcome="ok",instance="a"',
               ramp((60, 60), (0, 60))),
        series("mlprobe_predictions_total", f'{BASE},outcome="error",instance="a"', FLAT),
        series("mlprobe_predictions_total", 'model="m",model_version="2",outcome="ok"',
               per_minute(90)),
        series("mlprobe_predictions_total", 'model="m",model_version="2",outcome="error"',
               per_minute(10, start_at=60)),
        series("mlprobe_predictions_total", 'model="n",model_version="1",outcome="ok"',
               per_minute(98)),
        series("mlprobe_predictions_total", 'model="n",model_version="1",outcome="error"',
               per_minute(2, start_at=60)),
    ]
    http = 'http_request_method="POST",http_route="/predict",error_type=""'
    out += [
        series("http_server_request_duration_seconds_count",
               f'{http},http_response_status_code="200"', per_minute(90)),
        series("http_server_request_duration_seconds_count",
               f'{http},http_response_status_code="500"', per_minute(10, start_at=60)),
        series("http_server_request_duration_seconds_count",
               'http_request_method="GET",http_route="/items",error_type="",'
               'http_response_status_code="200"', per_minute(10)),
    ]
    return out


def _fleet_expr_tests(n: RuleNames) -> list[dict[str, Any]]:
    stats_of = {"psi": psi_of, "js": js_of, "linf": linf_of}
    tests = []
    for stat, record in (("psi", n.psi), ("js", n.js), ("linf", n.linf)):
        samples = []
        for feature, by_profile in HOUR_COUNTS.items():
            for profile, counts in by_profile.items():
                replica = next(b for (_, p), b in FLEET_BINS[feature].items() if p == profile)
                ref = [replica[b][0] for b in counts]
                value = stats_of[stat](ref, list(counts.values()))
                samples.append({"labels": f'{{{BASE},profile="{profile}",feature="{feature}"}}',
                                "value": rounded(value)})
        tests.append({"expr": f"round({record}, {ROUND!r})", "eval_time": "120m",
                      "exp_samples": samples})
    x1 = f'{BASE},profile="p1",feature="x"'
    tests += [
        {"expr": f'{n.bin_values}{{feature="x",profile="p1"}}', "eval_time": "120m",
         "exp_samples": [{"labels": f'{n.bin_values}{{{x1},bin="0"}}', "value": 2400},
                         {"labels": f'{n.bin_values}{{{x1},bin="1"}}', "value": 1200}]},
        {"expr": f'{n.values}{{feature=~"x|z"}}', "eval_time": "120m",
         "exp_samples": [{"labels": f'{n.values}{{{x1}}}', "value": 3600},
                         {"labels": f'{n.values}{{{BASE},profile="p2",feature="x"}}',
                          "value": 6000},
                         {"labels": f'{n.values}{{{BASE},profile="p1",feature="z"}}',
                          "value": 0}]},
        {"expr": f'{n.share}{{feature=~"x|z",profile="p1"}} * 3', "eval_time": "120m",
         "exp_samples": [{"labels": f'{{{x1},bin="0"}}', "value": 2},
                         {"labels": f'{{{x1},bin="1"}}', "value": 1}]},
        {"expr": f'{n.reference}{{feature="c"}}', "eval_time": "120m",
         "exp_samples": [{"labels": f'{n.reference}{{{BASE},profile="p1",feature="c",'
                                    f'bin="{b}"}}', "value": v}
                         for b, v in (("u", 0.5), ("v", 0.5), ("__other__", 0.0))]},
    ]
    route = 'http_route="/predict"'
    tests += [
        {"expr": f"round({n.rate}, {ROUND!r})", "eval_time": "120m", "exp_samples": [
            {"labels": f"{{{BASE}}}", "value": 0},
            {"labels": '{model="m",model_version="2"}', "value": rounded(100 / 60)},
            {"labels": '{model="n",model_version="1"}', "value": rounded(100 / 60)}]},
        {"expr": f"round({n.error_ratio}, {ROUND!r})", "eval_time": "120m", "exp_samples": [
            {"labels": '{model="m",model_version="2"}', "value": rounded(0.1)},
            {"labels": '{model="n",model_version="1"}', "value": rounded(0.02)}]},
        {"expr": f"round({n.http_errors}, {ROUND!r})", "eval_time": "120m", "exp_samples": [
            {"labels": f"{{{route}}}", "value": rounded(0.1)},
            {"labels": '{http_route="/items"}', "value": 0}]},
    ]
    return tests


def _fleet_alert_tests(rules: list[dict[str, Any]], n: RuleNames) -> list[dict[str, Any]]:
    def p1(feature: str) -> dict[str, str]:
        return {"model": "m", "model_version": "1", "profile": "p1", "feature": feature}

    def per(instance: str, feature: str) -> dict[str, str]:
        return {"model": "m", "model_version": "1", "feature": feature, "instance": instance}

    p2x = {**p1("x"), "profile": "p2"}
    both = ("warning", "critical")
    firing = {
        "MlprobeFleetFeatureDrift": [("warning", p1("x"))] + [(s, p1("c")) for s in both]
                                    + [(s, p2x) for s in both],
        "MlprobeFleetPredictionDrift": [(s, p1("__prediction__")) for s in both],
        "MlprobeFeatureDrift": [("warning", per("a", "x"))] + [(s, per("b", "x")) for s in both],
        "MlprobePredictionDrift": [(s, per("a", "__prediction__")) for s in both],
        "MlprobeFeatureQuality": [("warning", per("a", "x"))] + [(s, per("b", "c"))
                                                                for s in both],
        "MlprobeSchemaViolations": [
            ("warning", {"model": "m", "model_version": "1", "kind": "missing_feature"}),
            ("warning", {"model": "m", "model_version": "1", "kind": "ragged_row"}),
            ("critical", {"model": "m", "model_version": "1", "kind": "ragged_row"})],
        "MlprobeInternalErrors": [("warning", {"instance": "a", "job": "app"})],
        "MlprobeProfileMixed": [("warning", {"model": "m", "model_version": "1"})],
        "MlprobeNoTraffic": [("warning", {"model": "m", "model_version": "1"})],
        "MlprobeErrorRate": [("warning", {"model": "n", "model_version": "1"})]
                            + [(s, {"model": "m", "model_version": "2"}) for s in both],
        "MlprobeHttpServerErrors": [(s, {"http_route": "/predict"}) for s in both],
    }
    tests = []
    for name, cases in firing.items():
        tests.append({"alertname": name, "eval_time": "10m", "exp_alerts": []})
        tests.append({"alertname": name, "eval_time": "120m",
                      "exp_alerts": exp_alerts(rules, name, cases)})
    return tests


# -- latency: 26 hours of 2-minute samples ---------------------------------------------------

LATENCY_STEPS = 780  # 26 h
SHIFT = 750          # 25 h: latency goes up for models m and n, stays for o
PER_STEP = 100
BUCKETS = ("0.1", "0.25", "0.5", "+Inf")


def _latency_series() -> list[dict[str, str]]:
    # fraction of calls <= 0.1 s after the shift (before it every call is <= 0.1 s)
    after = {"m": 0.0, "n": 0.9, "o": 1.0}
    out = []
    for model, fast in after.items():
        for le in BUCKETS:
            late = PER_STEP if le != "0.1" else PER_STEP * fast
            out.append(series("mlprobe_prediction_duration_seconds_bucket",
                              f'model="{model}",model_version="1",le="{le}"',
                              ramp((PER_STEP, SHIFT), (late, LATENCY_STEPS - SHIFT))))
        out.append(series("mlprobe_prediction_score_bucket",
                          f'model="{model}",model_version="1",output="score",le="0.5"',
                          f"0+{PER_STEP // 2}x{LATENCY_STEPS}"))
        out.append(series("mlprobe_prediction_score_bucket",
                          f'model="{model}",model_version="1",output="score",le="+Inf"',
                          f"0+{PER_STEP}x{LATENCY_STEPS}"))
    for le, per in (("0.1", 40), ("0.25", 100), ("+Inf", 100)):
        out.append(series("http_server_request_duration_seconds_bucket",
                          f'http_route="/predict",le="{le}"', f"0+{per}x{LATENCY_STEPS}"))
    return out


def _latency_tests(rules: list[dict[str, Any]], n: RuleNames) -> dict[str, Any]:
    # Linear interpolation in the bucket holding the quantile (histogram_quantile).
    def q_in_second_bucket(q: float, fast: float) -> float:
        return 0.1 + (q - fast) / (1 - fast) * 0.15 if q > fast else q / fast * 0.1

    exprs = []
    for q, record in n.latency.items():
        exprs.append({"expr": f"round({record}, {ROUND!r})", "eval_time": "26h",
                      "exp_samples": [
                          {"labels": f'{{model="{m}",model_version="1"}}',
                           "value": rounded(q_in_second_bucket(q, fast))}
                          for m, fast in (("m", 0.0), ("n", 0.9), ("o", 1.0))]})
    for q, record in n.score.items():
        value = q / 0.5 * 0.5 if q <= 0.5 else 0.5  # +Inf bucket: the last finite bound
        exprs.append({"expr": f"round({record}, {ROUND!r})", "eval_time": "26h",
                      "exp_samples": [{"labels": f'{{model="{m}",model_version="1",'
                                                 f'output="score"}}', "value": rounded(value)}
                                      for m in ("m", "n", "o")]})
    for q, record in n.http_latency.items():
        value = q / 0.4 * 0.1 if q <= 0.4 else 0.1 + (q - 0.4) / 0.6 * 0.15
        exprs.append({"expr": f"round({record}, {ROUND!r})", "eval_time": "26h",
                      "exp_samples": [{"labels": '{http_route="/predict"}',
                                       "value": rounded(value)}]})
    m, nn = {"model": "m", "model_version": "1"}, {"model": "n", "model_version": "1"}
    both = ("warning", "critical")
    firing = {"MlprobeLatencyP95Up": [(s, m) for s in both] + [("warning", nn)],
              "MlprobeLatencyP99Up": [(s, m) for s in both] + [(s, nn) for s in both]}
    alerts = []
    for name, cases in firing.items():
        alerts.append({"alertname": name, "eval_time": "24h30m", "exp_alerts": []})
        alerts.append({"alertname": name, "eval_time": "26h",
                       "exp_alerts": exp_alerts(rules, name, cases)})
    return {"interval": "2m", "input_series": _latency_series(), "promql_expr_test": exprs,
            "alert_rule_test": alerts}


# -- gradual: 8 days of hourly samples -------------------------------------------------------

WEEK, TOTAL = 168, 200


def _gradual_tests(rules: list[dict[str, Any]], n: RuleNames) -> dict[str, Any]:
    labels = 'model="m",model_version="1",profile="p1",instance="a"'
    moving = {"0": ramp((100, WEEK), (300, TOTAL - WEEK)), "1": f"0+100x{TOTAL}"}
    stable = {"0": f"0+100x{TOTAL}", "1": f"0+100x{TOTAL}"}
    input_series = [series("mlprobe_feature_bin_total", f'{labels},feature="{f}",bin="{b}"', v)
                    for f, bins in (("x", moving), ("y", stable)) for b, v in bins.items()]
    # at 200 h: last day [176, 200] all shifted; the week before it [8, 176]
    recent = [24 * 300, 24 * 100]
    baseline = [160 * 100 + 8 * 300, 168 * 100]
    expected = psi_of(list(np.asarray(baseline) / sum(baseline)), recent)
    key = 'model="m",model_version="1",profile="p1"'
    return {
        "interval": "1h", "input_series": input_series,
        "promql_expr_test": [
            {"expr": f"round({n.gradual_psi}, {ROUND!r})", "eval_time": "200h",
             "exp_samples": [{"labels": f'{{{key},feature="x"}}', "value": rounded(expected)},
                             {"labels": f'{{{key},feature="y"}}', "value": 0}]},
            {"expr": f'{n.recent_values}{{feature="x"}}', "eval_time": "200h",
             "exp_samples": [{"labels": f'{n.recent_values}{{{key},feature="x"}}',
                              "value": 9600}]},
            {"expr": f'{n.recent_bin_values}{{feature="x",bin="0"}}', "eval_time": "200h",
             "exp_samples": [{"labels": f'{n.recent_bin_values}{{{key},feature="x",bin="0"}}',
                              "value": 7200}]},
            {"expr": f'{n.recent_share}{{feature="x",bin="0"}}', "eval_time": "200h",
             "exp_samples": [{"labels": f'{n.recent_share}{{{key},feature="x",bin="0"}}',
                              "value": 0.75}]},
            {"expr": f'{n.baseline_share}{{feature="y",bin="0"}}', "eval_time": "200h",
             "exp_samples": [{"labels": f'{n.baseline_share}{{{key},feature="y",bin="0"}}',
                              "value": 0.5}]}],
        "alert_rule_test": [
            {"alertname": "MlprobeGradualDrift", "eval_time": "160h", "exp_alerts": []},
            {"alertname": "MlprobeGradualDrift", "eval_time": "200h",
             "exp_alerts": exp_alerts(rules, "MlprobeGradualDrift",
                                      [("warning", {"model": "m", "model_version": "1",
                                                    "profile": "p1", "feature": "x"})])}],
    }


# -- model quality: 2 hours of 1-minute samples ----------------------------------------------

# (model, version) -> (labelled pairs a minute, correct a minute before and after minute 40)
QUALITY = {("m", "1"): (100, 90, 84),    # 0.90 -> 0.84: 6.7% below the 0.9 reference
           ("m", "2"): (100, 90, 90),    # unchanged
           ("n", "1"): (100, 90, 87.5),  # 0.875: 2.8% below (warning only)
           ("o", "1"): (5, 5, 0)}        # accuracy 0, but too few pairs for an alert


def _quality_tests(rules: list[dict[str, Any]], n: RuleNames) -> dict[str, Any]:
    out = []
    for (model, version), (count, before, after) in QUALITY.items():
        labels = f'model="{model}",model_version="{version}"'
        out.append(series("mlprobe_outcome_stats_total", f'{labels},metric="count"',
                          per_minute(count)))
        out.append(series("mlprobe_outcome_stats_total", f'{labels},metric="correct"',
                          ramp((before, 40), (after, STEPS - 40))))
        out.append(series("mlprobe_model_quality_reference", f'{labels},metric="accuracy"',
                          f"0.9x{STEPS}"))
    regression = 'model="r",model_version="1"'
    out.append(series("mlprobe_outcome_stats_total", f'{regression},metric="count"',
                      per_minute(10)))
    out.append(series("mlprobe_outcome_stats_total", f'{regression},metric="squared_error"',
                      per_minute(40)))  # MSE 4: RMSE 2
    out.append(series("mlprobe_concept_drift_status", 'model="m",model_version="1",instance="a"',
                      "0x60 1x59"))
    out.append(series("mlprobe_concept_drift_status", 'model="m",model_version="2",instance="a"',
                      f"0x{STEPS}"))
    # over the last hour at minute 120: the pairs after the change only
    accuracy = {key: after / count for key, (count, before, after) in QUALITY.items()}
    exprs = [
        {"expr": f"round({n.accuracy}, {ROUND!r})", "eval_time": "120m", "exp_samples": [
            {"labels": f'{{model="{m}",model_version="{v}"}}', "value": rounded(a)}
            for (m, v), a in accuracy.items()]},
        {"expr": f'{n.pairs}{{model="m"}}', "eval_time": "120m", "exp_samples": [
            {"labels": f'{n.pairs}{{model="m",model_version="{v}"}}', "value": 6000}
            for v in ("1", "2")]},
        {"expr": f"round({n.rmse}, {ROUND!r})", "eval_time": "120m", "exp_samples": [
            {"labels": f"{{{regression}}}", "value": rounded(2.0)}]},
    ]
    both = ("warning", "critical")
    firing = {"MlprobeModelAccuracyDrop": [(s, {"model": "m", "model_version": "1"})
                                           for s in both]
              + [("warning", {"model": "n", "model_version": "1"})],
              "MlprobeConceptDrift": [("warning", {"model": "m", "model_version": "1"})]}
    alerts = []
    for name, cases in firing.items():
        alerts.append({"alertname": name, "eval_time": "50m", "exp_alerts": []})
        alerts.append({"alertname": name, "eval_time": "120m",
                       "exp_alerts": exp_alerts(rules, name, cases)})
    return {"interval": "1m", "input_series": out, "promql_expr_test": exprs,
            "alert_rule_test": alerts}


def promtool_test_files(rule_path: str, rules: list[dict[str, Any]],
               params: RuleParams | None = None) -> dict[str, dict[str, Any]]:
    """The promtool test documents, by file stem (each refers to ``rule_path``)."""
    n = RuleNames(params or RuleParams())

    def doc(interval: str, group: dict[str, Any]) -> dict[str, Any]:
        return {"rule_files": [rule_path], "evaluation_interval": interval, "tests": [group]}

    # Evaluation intervals stay under Prometheus' 5-minute lookback: alerts read series that
    # other groups record, and promtool evaluates the groups of one instant in no fixed
    # order, so an alert may read the previous step's sample, which must still be visible.
    fleet = {"interval": "1m", "input_series": _fleet_series(),
             "promql_expr_test": _fleet_expr_tests(n),
             "alert_rule_test": _fleet_alert_tests(rules, n)}
    return {"fleet": doc("1m", fleet), "latency": doc("2m", _latency_tests(rules, n)),
            "gradual": doc("1h", _gradual_tests(rules, n)),
            "quality": doc("1m", _quality_tests(rules, n))}
