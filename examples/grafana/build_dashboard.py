"""Build mlprobe's Grafana dashboard with Grafana's own SDK, and write the packaged JSON.

    pip install 'grafana-foundation-sdk==1769699379!11.6.0'   # in the [test] extra
    python examples/grafana/build_dashboard.py                # rewrites the packaged JSON

The SDK (Grafana Labs' ``grafana-foundation-sdk``, generated from Grafana's own schemas; the
pinned build targets Grafana 11.6) gives typed builders for every panel kind, so options that
Grafana would silently ignore are caught here. It is a development dependency only: mlprobe
ships the JSON it produces (``src/mlprobe/resources/grafana-dashboard.json``, printed by
``mlprobe dashboard``), and ``tests/test_dashboard.py`` checks the file is what this script
builds, then runs every panel's PromQL against a real Prometheus scraping the demo service.

Panels are declared below as plain data (title, kind, queries); the queries use the template
variables ``$model``, ``$version`` and ``$feature`` (multi-value regexes) and
``$__rate_interval``. Fleet-wide drift panels read the recording rules of ``mlprobe rules``
(default ranges).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "src" / "mlprobe" / "resources" / \
    "grafana-dashboard.json"
M = 'model=~"$model", model_version=~"$version"'
F = f'{M}, feature=~"$feature"'
RATE = "$__rate_interval"
STATUS_MAP = {"0": ("ok", "green"), "1": ("warning", "orange"), "2": ("critical", "red")}

# (row, title, kind, unit, description, [(expr, legend, instant)])
PANELS: list[tuple[str, str, str, str, str, list[tuple[str, str, bool]]]] = [
    ("Traffic and latency", "Predict calls per second", "timeseries", "reqps",
     "Calls of the tracked predict function, by version and outcome.",
     [(f"sum by (model_version, outcome) (rate(mlprobe_predictions_total{{{M}}}[{RATE}]))",
       "v{{model_version}} {{outcome}}", False)]),
    ("Traffic and latency", "Latency percentiles", "timeseries", "s",
     "p50 / p95 / p99 of predict calls over every replica (histogram buckets).",
     [(f"histogram_quantile({q}, sum by (model_version, le) (rate("
       f"mlprobe_prediction_duration_seconds_bucket{{{M}}}[{RATE}])))",
       f"v{{{{model_version}}}} p{int(q * 100)}", False) for q in (0.5, 0.95, 0.99)]),
    ("Traffic and latency", "Errors", "timeseries", "percentunit",
     "Share of predict calls that raised, and the calls per second by exception type.",
     [(f"sum by (model_version) (rate(mlprobe_predictions_total{{{M}, outcome=\"error\"}}"
       f"[{RATE}])) / sum by (model_version) (rate(mlprobe_predictions_total{{{M}}}[{RATE}]))",
       "v{{model_version}} error share", False),
      (f"sum by (error_type) (rate(mlprobe_prediction_errors_total{{{M}}}[{RATE}]))",
       "{{error_type}} /s", False)]),
    ("Traffic and latency", "In flight", "timeseries", "short",
     "Predict calls running right now, summed over replicas.",
     [(f"sum by (model_version) (mlprobe_predictions_in_flight{{{M}}})", "v{{model_version}}",
       False)]),
    ("Traffic and latency", "Batch sizes", "timeseries", "short",
     "Rows per predict call: median and p95.",
     [(f"histogram_quantile({q}, sum by (le) (rate(mlprobe_batch_rows_bucket{{{M}}}[{RATE}])))",
       f"p{int(q * 100)} rows", False) for q in (0.5, 0.95)]),
    ("Traffic and latency", "Score distribution", "heatmap", "short",
     "Predicted scores per bucket over time (mlprobe_prediction_score).",
     [(f"sum by (le) (increase(mlprobe_prediction_score_bucket{{{M}}}[{RATE}]))", "{{le}}",
       False)]),
    ("Drift", "Drift status by feature", "table", "none",
     "Worst drift status of each feature over the replicas (rolling window).",
     [(f"max by (feature) (mlprobe_feature_drift_status{{{F}}})", "", True)]),
    ("Drift", "Drift status history", "status-history", "none",
     "Drift status of each feature over time (0 ok, 1 warning, 2 critical).",
     [(f"max by (feature) (mlprobe_feature_drift_status{{{F}}})", "{{feature}}", False)]),
    ("Drift", "PSI per feature (worst replica)", "timeseries", "short",
     "PSI of each replica's rolling window against the reference; the worst replica.",
     [(f"max by (feature) (mlprobe_feature_drift{{{F}, method=\"psi\"}})", "{{feature}}",
       False)]),
    ("Drift", "Fleet PSI per feature (last hour)", "timeseries", "short",
     "PSI of every replica's values together over the last hour (recording rule "
     "mlprobe:feature_psi:increase1h from `mlprobe rules`).",
     [(f"mlprobe:feature_psi:increase1h{{{F}}}", "{{feature}} ({{profile}})", False)]),
    ("Drift", "Drifted share of features", "timeseries", "percentunit",
     "Share of features whose drift status is warning or critical (worst replica).",
     [(f"max by (model_version) (mlprobe_dataset_drift_share{{{M}}})", "v{{model_version}}",
       False)]),
    ("Feature statistics", "Mean shift against the reference", "timeseries", "short",
     "Window mean minus reference mean, in reference standard deviations; and the window's "
     "std over the reference's.",
     [(f"max by (feature) (mlprobe_feature_drift{{{F}, method=\"mean_shift_sd\"}})",
       "{{feature}} mean shift (σ)", False),
      (f"max by (feature) (mlprobe_feature_drift{{{F}, method=\"std_ratio\"}})",
       "{{feature}} std ratio", False)]),
    ("Feature statistics", "Window quantiles", "timeseries", "short",
     "Quantiles 0.05 / 0.5 / 0.95 of each feature's rolling window (withheld for sensitive "
     "features).",
     [(f"avg by (feature, quantile) (mlprobe_feature_quantile{{{F}}})",
       "{{feature}} q{{quantile}}", False)]),
    ("Feature statistics", "Bin shares vs reference (last hour)", "barchart", "percentunit",
     "Share of the last hour's values per reference bin, every replica together, next to "
     "the reference share.",
     [(f"sum by (feature, bin) (increase(mlprobe_feature_bin_total{{{F}}}[1h])) / ignoring(bin)"
       f" group_left() sum by (feature) (increase(mlprobe_feature_bin_total{{{F}}}[1h]))",
       "current", True),
      (f"max by (feature, bin) (mlprobe_feature_reference_ratio{{{F}}})", "reference", True)]),
    ("Data quality", "Data-quality status by feature", "table", "none",
     "Worst data-quality status of each feature (missing share over the reference's).",
     [(f"max by (feature) (mlprobe_feature_quality_status{{{F}}})", "", True)]),
    ("Data quality", "Missing and out-of-range values per second", "timeseries", "short",
     "Missing values and numeric values outside the reference range, by feature.",
     [(f"sum by (feature) (rate(mlprobe_feature_missing_total{{{F}}}[{RATE}]))",
       "{{feature}} missing", False),
      (f"sum by (feature) (rate(mlprobe_feature_out_of_range_total{{{F}}}[{RATE}]))",
       "{{feature}} out of range", False)]),
    ("Data quality", "Schema violations per second", "timeseries", "short",
     "Inputs that did not fit the profile's schema, by kind (0 when there are none).",
     [(f"sum by (kind) (rate(mlprobe_schema_violations_total{{{M}}}[{RATE}])) or vector(0)",
       "{{kind}}", False)]),
    ("Data quality", "Dataset status", "table", "none",
     "Drift, quality and overall status of the dataset (worst replica).",
     [(f"max by (aspect) (mlprobe_dataset_status{{{M}}})", "", True)]),
    ("Model quality", "Accuracy: realised, reference and label-free estimate", "timeseries",
     "percentunit",
     "Accuracy over the rolling window of labelled outcomes (worst replica), the accuracy on "
     "the reference data, and the estimate from the scores alone (assumes calibration).",
     [(f"min by (model_version) (mlprobe_model_quality{{{M}, metric=\"accuracy\"}})",
       "v{{model_version}} realised", False),
      (f"max by (model_version) (mlprobe_model_quality_reference{{{M}, metric=\"accuracy\"}})",
       "v{{model_version}} reference", False),
      (f"min by (model_version) (mlprobe_model_quality_estimate{{{M}, metric=\"accuracy\"}})",
       "v{{model_version}} estimate", False)]),
    ("Model quality", "Fleet accuracy by version (last hour)", "timeseries", "percentunit",
     "Correct over labelled pairs of every replica in the last hour (recording rule "
     "mlprobe:model_accuracy:ratio_increase1h from `mlprobe rules`): compare versions.",
     [(f"mlprobe:model_accuracy:ratio_increase1h{{{M}}}", "v{{model_version}}", False)]),
    ("Model quality", "Model-quality status", "table", "none",
     "Status of each judged metric against the reference (worst replica).",
     [(f"max by (model_version, metric) (mlprobe_model_quality_status{{{M}}})", "", True)]),
    ("Model quality", "Outcomes per second by result", "timeseries", "short",
     "Labels recorded: matched to their prediction, joined by the caller, late, duplicate, "
     "unknown or invalid.",
     [(f"sum by (result) (rate(mlprobe_outcomes_total{{{M}}}[{RATE}]))", "{{result}}",
       False)]),
    ("Model quality", "Label delay", "timeseries", "s",
     "Time from a prediction to its label: median and p95.",
     [(f"histogram_quantile({q}, sum by (le) (rate(mlprobe_outcome_delay_seconds_bucket"
       f"{{{M}}}[{RATE}])))", f"p{int(q * 100)}", False) for q in (0.5, 0.95)]),
    ("Model quality", "Shadow agreement with the primary", "timeseries", "percentunit",
     "Share of a shadow candidate's predictions that agree with the primary's (same class), "
     "by candidate version.",
     [(f"sum by (model_version) (rate(mlprobe_shadow_comparisons_total{{model=~\"$model\", "
       f"primary_version=~\"$version\", result=\"agree\"}}[{RATE}])) / sum by (model_version) "
       f"(rate(mlprobe_shadow_comparisons_total{{model=~\"$model\", "
       f"primary_version=~\"$version\"}}[{RATE}]))", "candidate v{{model_version}}", False)]),
    ("HTTP", "Requests per second by route and status", "timeseries", "reqps",
     "HTTP server requests (OpenTelemetry semantic conventions), by route template and code.",
     [(f"sum by (http_route, http_response_status_code) "
       f"(rate(http_server_request_duration_seconds_count[{RATE}]))",
       "{{http_route}} {{http_response_status_code}}", False)]),
    ("HTTP", "HTTP latency p95 by route", "timeseries", "s",
     "p95 of HTTP request durations per route (to the last body byte).",
     [(f"histogram_quantile(0.95, sum by (http_route, le) "
       f"(rate(http_server_request_duration_seconds_bucket[{RATE}])))", "{{http_route}}", False)]),
    ("HTTP", "Active requests", "timeseries", "short",
     "HTTP requests in progress, by method.",
     [("sum by (http_request_method) (http_server_active_requests)", "{{http_request_method}}",
       False)]),
    ("Fleet", "Profiles in use", "table", "none",
     "Replicas per reference profile fingerprint (more than one profile per version: a "
     "profile rollout, or a mistake).",
     [(f"count by (model_version, profile) (count by (model_version, profile, instance) "
       f"(mlprobe_feature_reference_ratio{{{M}}}))", "", True)]),
]


def build() -> dict[str, Any]:
    """The dashboard as a JSON-ready dict (built with grafana-foundation-sdk)."""
    from grafana_foundation_sdk.builders import (
        barchart,
        heatmap,
        statushistory,
        table,
        timeseries,
    )
    from grafana_foundation_sdk.builders.dashboard import (
        Dashboard,
        DatasourceVariable,
        QueryVariable,
        Row,
        ThresholdsConfig,
    )
    from grafana_foundation_sdk.builders.prometheus import Dataquery
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import (
        DataSourceRef,
        Threshold,
        ThresholdsMode,
        ValueMap,
        ValueMappingResult,
        VariableRefresh,
        VariableSort,
    )
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat

    ds = DataSourceRef(type_val="prometheus", uid="${datasource}")

    def variable(name: str, label: str, query: str, *, multi: bool) -> Any:
        return (QueryVariable(name).label(label).datasource(ds).query(query)
                .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
                .multi(multi).include_all(multi))

    builder = (
        Dashboard("mlprobe: model serving, drift and data quality")
        .uid("mlprobe-overview").tags(["mlprobe", "ml", "drift"]).refresh("30s")
        .time("now-6h", "now").editable()
        .description("mlprobe metrics: traffic, latency, errors, drift, feature statistics, "
                     "data quality, model quality, HTTP. Generated by "
                     "examples/grafana/build_dashboard.py.")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(variable("model", "Model", "label_values(mlprobe_predictions_total, model)",
                                multi=False))
        .with_variable(variable("version", "Version", 'label_values(mlprobe_predictions_total'
                                '{model=~"$model"}, model_version)', multi=True))
        .with_variable(variable("feature", "Feature", 'label_values(mlprobe_feature_drift_status'
                                '{model=~"$model", model_version=~"$version"}, feature)',
                                multi=True))
    )
    status_mappings = [ValueMap({value: ValueMappingResult(text=text, color=colour, index=i)
                                 for i, (value, (text, colour)) in enumerate(STATUS_MAP.items())})]
    status_thresholds = (ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([
        Threshold(None, "green"), Threshold(1, "orange"), Threshold(2, "red")]))
    kinds = {"timeseries": timeseries.Panel, "table": table.Panel, "heatmap": heatmap.Panel,
             "status-history": statushistory.Panel, "barchart": barchart.Panel}
    current_row = None
    for row, title, kind, unit, description, queries in PANELS:
        if row != current_row:
            builder = builder.with_row(Row(row))
            current_row = row
        panel = (kinds[kind]().title(title).description(description).datasource(ds)
                 .unit(unit).span(12 if kind in ("table", "barchart") else 8).height(8))
        if "status" in title.lower() and kind in ("table", "status-history"):
            panel = panel.mappings(status_mappings).thresholds(status_thresholds)
        for i, (expr, legend, instant) in enumerate(queries):
            query = Dataquery().expr(expr).ref_id("ABCDEFGH"[i]).datasource(ds)
            if legend:
                query = query.legend_format(legend)
            if instant:
                query = query.instant().format(PromQueryFormat.TABLE)
            elif kind == "heatmap":
                query = query.format(PromQueryFormat.HEATMAP)
            panel = panel.with_target(query)
        builder = builder.with_panel(panel)
    return json.loads(JSONEncoder(sort_keys=True, indent=2).encode(builder.build()))


def render(document: dict[str, Any]) -> str:
    """The file's text: stable key order, two-space indent, final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(build()))
    print(f"wrote {OUT}", file=sys.stderr)
