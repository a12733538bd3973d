"""Prometheus alerting rules for the monitoring guide's scenarios, and the whole rule file.

Every alert has a ``for:``, a ``severity`` label (``warning`` or ``critical``; where both exist
the critical one fires on top of the warning, so route or inhibit by severity), a one-line
``summary`` and a runbook-style ``description`` that starts with what to check first. Thresholds
and durations come from :class:`mlprobe._rules.RuleParams`; ``tests/test_rules.py`` runs a
promtool unit test for every rule, firing and not firing.
"""

from __future__ import annotations

from typing import Any

from . import _yaml
from ._rules import RuleNames, RuleParams, recording_groups
from ._version import __version__

__all__ = ["alert_rules", "alerts_markdown", "rule_file", "rule_file_yaml"]

_WHO = "{{ $labels.model }} v{{ $labels.model_version }}"
_FEATURE = "feature {{ $labels.feature }} of " + _WHO


def _alert(name: str, expr: str, for_: str, severity: str, summary: str,
           description: str) -> dict[str, Any]:
    return {"alert": name, "expr": expr, "for": for_, "labels": {"severity": severity},
            "annotations": {"summary": summary, "description": description}}


def _pair(name: str, exprs: tuple[str, str], for_: str, summary: str, description: str
          ) -> list[dict[str, Any]]:
    return [_alert(name, expr, for_, severity, summary.replace("LEVEL", level),
                   description.replace("LEVEL", level))
            for expr, severity, level in zip(exprs, ("warning", "critical"),
                                             ("warning", "critical"))]


def _latency(p: RuleParams, n: RuleNames) -> list[dict[str, Any]]:
    rules = []
    m = p.group("model", "model_version")
    bucket = p.metric("mlprobe_prediction_duration_seconds_bucket")
    for q, label in ((0.95, "P95"), (0.99, "P99")):
        baseline = (f"histogram_quantile({q}, sum by ({m}, le) "
                    f"(rate({bucket}[{p.rate_range}] offset {p.latency_baseline})))")
        exprs = tuple(f"{n.latency[q]}\n  > {factor!r} * {baseline}"
                      for factor in (p.latency_warning, p.latency_critical))
        ratio = {"warning": p.latency_warning, "critical": p.latency_critical}
        rules += [_alert(
            f"MlprobeLatency{label}Up", expr, p.for_latency, severity,
            f"{label.lower()} latency of {_WHO} is over {ratio[severity]:g}x its level "
            f"{p.latency_baseline} ago",
            f"The fleet-wide {label.lower()} of predict calls ({n.latency[q]}) is more than "
            f"{p.latency_warning:g} (warning) / {p.latency_critical:g} (critical) times the "
            f"{label.lower()} of the same {p.rate_range} window {p.latency_baseline} ago.\n"
            "Check first: did a deploy, a model version or a traffic change (batch sizes in "
            "mlprobe_batch_rows, request rate) start then? Then CPU saturation and in-flight "
            "calls (mlprobe_predictions_in_flight) per replica, and a slow dependency.")
            for expr, severity in zip(exprs, ("warning", "critical"))]
    return rules


def alert_rules(p: RuleParams) -> list[dict[str, Any]]:
    """Every alerting rule, in one list (the ``mlprobe-alerts`` group)."""
    n = RuleNames(p)
    m = p.group("model", "model_version")
    g = p.group("model", "model_version", "profile")
    rules = _latency(p, n)
    rules += _pair(
        "MlprobeErrorRate", (f"{n.error_ratio} > {p.error_warning!r}",
                             f"{n.error_ratio} > {p.error_critical!r}"), p.for_errors,
        f"predict calls of {_WHO} fail too often (LEVEL)",
        f"Over {p.rate_range}, more than {p.error_warning:g} (warning) / {p.error_critical:g} "
        "(critical) of the calls of the tracked predict function raised.\n"
        "Check first: mlprobe_prediction_errors_total by error_type shows which exception; "
        "then the service log for its traceback and whether one replica or input kind "
        "dominates.")
    rules += _pair(
        "MlprobeHttpServerErrors", (f"{n.http_errors} > {p.error_warning!r}",
                                    f"{n.http_errors} > {p.error_critical!r}"), p.for_errors,
        "HTTP route {{ $labels.http_route }} answers 5xx too often (LEVEL)",
        f"Over {p.rate_range}, more than {p.error_warning:g} (warning) / {p.error_critical:g} "
        "(critical) of the requests to this route got a 5xx.\n"
        "Check first: http_server_request_duration_seconds_count by error_type (the exception "
        "type, or client_disconnected), then the service log.")
    status = p.metric("mlprobe_feature_drift_status", 'feature!="__prediction__"')
    rules += _pair(
        "MlprobeFeatureDrift", (f"{status} >= 1", f"{status} >= 2"), p.for_drift,
        f"{_FEATURE} drifted on {{{{ $labels.instance }}}} (LEVEL)",
        "This replica's rolling window of the feature is LEVEL against the reference profile "
        "(mlprobe_feature_drift_status; the statistics are in mlprobe_feature_drift by "
        "method).\n"
        "Check first: whether the fleet-wide value (MlprobeFleetFeatureDrift) agrees, or only "
        "this replica's traffic moved; then the replica's /drift document or status page, and "
        "the upstream source of the feature (a changed pipeline, unit or default value).")
    pred = p.metric("mlprobe_feature_drift_status", 'feature="__prediction__"')
    rules += _pair(
        "MlprobePredictionDrift", (f"{pred} >= 1", f"{pred} >= 2"), p.for_drift,
        f"the prediction distribution of {_WHO} shifted on {{{{ $labels.instance }}}} (LEVEL)",
        "The model's outputs in this replica's rolling window are LEVEL against the "
        "reference predictions (feature __prediction__).\n"
        "Check first: input feature drift at the same time (the cause, usually), the score "
        "histogram (mlprobe_prediction_score) and the predicted classes; if the inputs did not "
        "move, a changed model artefact or preprocessing.")
    values_ok = f"and on ({g}, feature)\n  {n.values} >= {p.min_count}"
    for name, feature, what in (
            ("MlprobeFleetFeatureDrift", 'feature!="__prediction__"', _FEATURE),
            ("MlprobeFleetPredictionDrift", 'feature="__prediction__"',
             "the predictions of " + _WHO)):
        exprs = tuple(f"{n.psi}{{{feature}}} >= {level!r}\n  {values_ok}"
                      for level in (p.psi_warning, p.psi_critical))
        rules += _pair(
            name, exprs, p.for_drift,
            f"fleet-wide PSI of {what} over {p.drift_range} is LEVEL",
            f"PSI of the last {p.drift_range} of every replica together (profile "
            f"{{{{ $labels.profile }}}}) against the reference is at least {p.psi_warning:g} "
            f"(warning) / {p.psi_critical:g} (critical), over at least {p.min_count} values.\n"
            f"Check first: {n.share} against {n.reference} shows which bins moved; then "
            "whether one replica or one client dominates the change (mlprobe_feature_bin_total "
            "by instance), and the feature's upstream source.")
    rules.append(_alert(
        "MlprobeGradualDrift",
        f"{n.gradual_psi} >= {p.psi_warning!r}\n  and on ({g}, feature)\n  "
        f"{n.recent_values} >= {p.min_count}", p.for_gradual, "warning",
        f"{_FEATURE} moved over days: last {p.gradual_range} vs the {p.gradual_baseline} "
        "before it",
        f"PSI between the feature's fleet-wide distribution of the last {p.gradual_range} and "
        f"of the {p.gradual_baseline} before it is at least {p.psi_warning:g}: a slow drift "
        "that windows against the reference may not flag yet.\n"
        "Check first: the trend of mlprobe_feature_mean and the quantiles over the past "
        "weeks, and whether a seasonal pattern (weekday, campaign) explains it; plan a "
        "retraining or a new reference profile if it persists."))
    quality = p.metric("mlprobe_feature_quality_status")
    rules += _pair(
        "MlprobeFeatureQuality", (f"{quality} >= 1", f"{quality} >= 2"), p.for_quality,
        f"data quality of {_FEATURE} is LEVEL on {{{{ $labels.instance }}}}",
        "The missing + invalid share of the feature is at least 5 (warning) / 10 (critical) "
        "points over the reference's (the probe's DriftSpec.missing_thresholds), or no row of "
        "the window has a valid value at all (critical).\n"
        "Check first: mlprobe_feature_missing_total and mlprobe_schema_violations_total by "
        "kind (a renamed or dropped column, strings in a numeric field), then the client that "
        "sends the requests.")
    violations = p.metric("mlprobe_schema_violations_total")
    rows = p.metric("mlprobe_batch_rows_sum")
    rules += _pair(
        "MlprobeSchemaViolations",
        (f"sum by ({m}, kind) (increase({violations}[{p.rate_range}])) > 0",
         f"sum by ({m}, kind) (rate({violations}[{p.rate_range}]))\n  / ignoring(kind) "
         f"group_left()\n(sum by ({m}) (rate({rows}[{p.rate_range}])) > 0)\n"
         f"  > {p.schema_critical!r}"), p.for_schema,
        "inputs of " + _WHO + " violate the reference schema ({{ $labels.kind }}, LEVEL)",
        f"Inputs did not fit the profile's schema (warning: any in {p.rate_range}; critical: "
        f"more than {p.schema_critical:g} per row).\n"
        "Check first: the kind label (unexpected or missing columns, ragged rows, unreadable "
        "input), then which client or pipeline release changed its payload.")
    rules.append(_alert(
        "MlprobeNoTraffic", f"{n.rate} == 0", p.for_no_traffic, "warning",
        f"{_WHO} got no predict calls for {p.for_no_traffic}",
        "The predict function was not called at all (the probe is alive: its counters are "
        "scraped but flat).\n"
        "Check first: the load balancer and upstream callers, the service's HTTP metrics "
        "(are requests reaching it and failing before predict?), and whether this version "
        "was meant to be drained."))
    rules.append(_alert(
        "MlprobeInternalErrors",
        f"increase({p.metric('mlprobe_internal_errors_total')}[{p.rate_range}]) > 0",
        p.for_internal, "warning",
        "mlprobe swallowed internal errors on {{ $labels.instance }}",
        "mlprobe caught failures in its own recording or scrape code; the model's results "
        "were not affected, but some metrics may be missing.\n"
        "Check first: the service log (mlprobe logs each site at most once a minute with the "
        "traceback), then report it to mlprobe with that log line."))
    rules += _model_quality(p, n)
    ratio = p.metric("mlprobe_feature_reference_ratio")
    rules.append(_alert(
        "MlprobeProfileMixed",
        f"count by ({m}) (count by ({g}) ({ratio})) > 1", p.for_profile_mix, "warning",
        f"{_WHO} runs more than one reference profile",
        "Replicas of the same model version export bins of different reference profiles "
        "(label profile). Fleet-wide drift is computed per profile, so no value is wrong, "
        "but the replicas compare their traffic against different references.\n"
        "Check first: count by (profile, instance) (mlprobe_feature_reference_ratio) shows "
        "which replicas run which profile; finish or roll back the profile rollout."))
    return rules


def _model_quality(p: RuleParams, n: RuleNames) -> list[dict[str, Any]]:
    m = p.group("model", "model_version")
    accuracy = p.metric("mlprobe_model_quality_reference", 'metric="accuracy"')
    reference = f"max by ({m}) ({accuracy})"
    enough = f"and on ({m})\n  {n.pairs} >= {p.quality_min_count}"
    exprs = tuple(f"{n.accuracy}\n  < on ({m}) ({1 - drop!r} * {reference})\n  {enough}"
                  for drop in (p.quality_warning, p.quality_critical))
    rules = _pair(
        "MlprobeModelAccuracyDrop", exprs, p.for_model_quality,
        f"accuracy of {_WHO} dropped against its reference (LEVEL)",
        f"Fleet-wide accuracy over the last {p.quality_range} (labelled outcomes of every "
        f"replica, {n.accuracy}) is more than {p.quality_warning:.0%} (warning) / "
        f"{p.quality_critical:.0%} (critical) below the accuracy on the reference data "
        f"(mlprobe_model_quality_reference), over at least {p.quality_min_count} pairs.\n"
        "Check first: input drift at the same time (the drift alerts and the status page: "
        "a population the model was not trained for), then label drift (feature __target__) "
        "and the concept-drift signal (the inputs did not move but the labels' relation to "
        "them did); compare with the other versions (by model_version) and the label-free "
        "estimate (mlprobe_model_quality_estimate), and plan a retraining.")
    status = p.metric("mlprobe_concept_drift_status")
    rules.append(_alert(
        "MlprobeConceptDrift", f"max by ({m}) ({status}) >= 1", p.for_model_quality,
        "warning", f"errors of {_WHO} rose within its outcome history",
        "The model's per-outcome loss (0/1 error, or absolute error) in the recent part of "
        "the history is significantly higher than before (mlprobe_concept_drift_status, an "
        "ADWIN-style test per replica).\n"
        "Check first: the accuracy trend (mlprobe_model_quality by version) and input drift; "
        "if the inputs did not move, the relation between inputs and labels changed (new "
        "behaviour, a changed label definition, a broken label pipeline)."))
    return rules


# Alerts that read a group's recorded series live in that group, after its recording rules.
# A group with a long interval (the gradual one: 10m) records a sample per interval, and an
# instant query sees a series only for 5 minutes after its last sample: evaluated from another
# group, such an alert would read nothing most of the time, and its `for:` would never hold.
# In one group, rules run in order, so the alert always reads this evaluation's values.
_ALERTS_IN_GROUP = {"mlprobe-gradual-drift": ("MlprobeGradualDrift",)}


def rule_file(p: RuleParams | None = None) -> dict[str, Any]:
    """The whole rule file as a document: recording groups plus ``mlprobe-alerts``.

    An alert that reads the recorded series of a group with its own (longer) interval is
    placed in that group instead, after the rules it reads.
    """
    p = p or RuleParams()
    alerts = alert_rules(p)
    groups = []
    for group in recording_groups(p):
        names = _ALERTS_IN_GROUP.get(group["name"], ())
        if names:
            group = {**group, "rules": [*group["rules"],
                                        *(a for a in alerts if a["alert"] in names)]}
        groups.append(group)
    placed = {name for names in _ALERTS_IN_GROUP.values() for name in names}
    rest = [a for a in alerts if a["alert"] not in placed]
    return {"groups": [*groups, {"name": "mlprobe-alerts", "rules": rest}]}


def rule_file_yaml(p: RuleParams | None = None) -> str:
    """:func:`rule_file` as YAML, with a header naming the generator and its settings."""
    p = p or RuleParams()
    changed = [f"{k}={v!r}" for k, v in vars(p).items()
               if v != RuleParams.__dataclass_fields__[k].default]
    header = (f"Prometheus rules for mlprobe metrics, generated by mlprobe {__version__} "
              "(`mlprobe rules`).\n"
              f"Settings: {', '.join(changed) or 'defaults'}.\n"
              "Check: promtool check rules FILE. Definitions: docs/operating.md.")
    return _yaml.dump(rule_file(p), header=header)


def alerts_markdown(p: RuleParams | None = None) -> str:
    """The README's alert table: name, severities, ``for:`` and when it fires (first sentence
    of the description, templates named by their label)."""
    import re

    rows = ["| alert | severity | for | fires when |", "| --- | --- | --- | --- |"]
    seen: dict[str, list[dict[str, Any]]] = {}
    for rule in alert_rules(p or RuleParams()):
        seen.setdefault(rule["alert"], []).append(rule)
    for name, rules in seen.items():
        first = rules[0]["annotations"]["description"].split("\n")[0]
        first = re.sub(r"\{\{ \$labels\.(\w+) \}\}", r"<\1>", first).replace("|", "\\|")
        first = first.replace("LEVEL", "warning / critical")
        severity = " / ".join(r["labels"]["severity"] for r in rules)
        rows.append(f"| `{name}` | {severity} | {rules[0]['for']} | {first} |")
    return "\n".join(rows)
