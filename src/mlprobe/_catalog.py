"""The metric contract: every family mlprobe exports, with its type, unit, labels and help.

This table is the single source of truth. Instruments look their names up here, the exporters
take help texts and units from it, and a test holds the README's metric table equal to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .snapshot import MetricKind, exposed_name

__all__ = ["CATALOG", "MetricSpec", "spec"]

MODEL_LABELS = ("model", "model_version")
HTTP_LABELS = ("http_request_method", "http_route", "http_response_status_code",
               "error_type")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """Declared shape of one exported metric family.

    ``labels`` are the labels of every sample; the exposition adds ``le`` to histogram
    buckets and ``quantile`` to summary quantiles.
    """

    name: str
    kind: MetricKind
    unit: str
    labels: tuple[str, ...]
    description: str


_SPECS = (
    MetricSpec("mlprobe_predictions", "counter", "{call}", MODEL_LABELS + ("outcome",),
               "Calls of the instrumented predict function, by outcome (ok or error)."),
    MetricSpec("mlprobe_prediction_errors", "counter", "{call}", MODEL_LABELS + ("error_type",),
               "Calls that raised, by exception type (capped; extra types count as __other__)."),
    MetricSpec("mlprobe_prediction_duration_seconds", "histogram", "s", MODEL_LABELS,
               "Wall-clock duration of predict calls in seconds."),
    MetricSpec("mlprobe_predictions_in_flight", "gauge", "{call}", MODEL_LABELS,
               "Predict calls currently running."),
    MetricSpec("mlprobe_batch_rows", "histogram", "{row}", MODEL_LABELS,
               "Rows per predict call."),
    MetricSpec("mlprobe_input_bytes", "histogram", "By", MODEL_LABELS,
               "Size of the input's data buffers per predict call, where it is known."),
    MetricSpec("mlprobe_prediction_score", "histogram", "1", MODEL_LABELS + ("output",),
               "Distribution of predicted scores, per model output."),
    MetricSpec("mlprobe_predicted_class", "counter", "{prediction}", MODEL_LABELS + ("class",),
               "Predicted classes (capped; extra classes count as __other__)."),
    MetricSpec("mlprobe_feature_bin", "counter", "{value}",
               MODEL_LABELS + ("profile", "feature", "bin"),
               "Values per reference bin since start: decile bins 0-9 of numeric features, "
               "reference levels and __other__ of categorical ones, feature __prediction__ for "
               "the model's output; profile is a fingerprint of the bins' meaning (sum across "
               "replicas by profile for fleet-wide drift)."),
    MetricSpec("mlprobe_feature_reference_ratio", "gauge", "1",
               MODEL_LABELS + ("profile", "feature", "bin"),
               "Reference share of each bin of mlprobe_feature_bin_total."),
    MetricSpec("mlprobe_feature_missing", "counter", "{value}", MODEL_LABELS + ("feature",),
               "Missing values (None, NaN, absent feature) per feature since start."),
    MetricSpec("mlprobe_feature_out_of_range", "counter", "{value}", MODEL_LABELS + ("feature",),
               "Numeric values outside the reference [min, max] since start."),
    MetricSpec("mlprobe_feature_unseen_category", "counter", "{value}",
               MODEL_LABELS + ("feature",),
               "Categorical values outside the reference vocabulary since start."),
    MetricSpec("mlprobe_feature_mean", "gauge", "1", MODEL_LABELS + ("feature",),
               "Mean of a numeric feature over the rolling window."),
    MetricSpec("mlprobe_feature_stddev", "gauge", "1", MODEL_LABELS + ("feature",),
               "Population standard deviation of a numeric feature over the rolling window."),
    MetricSpec("mlprobe_feature_min", "gauge", "1", MODEL_LABELS + ("feature",),
               "Minimum of a numeric feature over the rolling window."),
    MetricSpec("mlprobe_feature_max", "gauge", "1", MODEL_LABELS + ("feature",),
               "Maximum of a numeric feature over the rolling window."),
    MetricSpec("mlprobe_feature_quantile", "summary", "1", MODEL_LABELS + ("feature",),
               "Quantiles 0.05, 0.5 and 0.95 of a numeric feature over the rolling window (1% "
               "relative error); _count and _sum are of the same window, so they can go down."),
    MetricSpec("mlprobe_feature_drift", "gauge", "1", MODEL_LABELS + ("feature", "method"),
               "Drift statistic of a feature's rolling window against the reference, by method "
               "(feature __prediction__ is the model's output)."),
    MetricSpec("mlprobe_feature_drift_status", "gauge", "1", MODEL_LABELS + ("feature",),
               "Drift status per feature: 0 ok, 1 warning, 2 critical (absent: insufficient "
               "data)."),
    MetricSpec("mlprobe_feature_quality_status", "gauge", "1", MODEL_LABELS + ("feature",),
               "Data-quality status per feature: 0 ok, 1 warning, 2 critical (missing share "
               "over the reference's, or no valid value at all; absent: insufficient data)."),
    MetricSpec("mlprobe_dataset_status", "gauge", "1", MODEL_LABELS + ("aspect",),
               "Dataset status, 0 ok, 1 warning, 2 critical, by aspect: drift (the drift "
               "verdict), quality (worst feature quality), model_quality (outcomes against the "
               "reference quality) and overall (the worst of them; absent: insufficient "
               "data)."),
    MetricSpec("mlprobe_dataset_drift_share", "gauge", "1", MODEL_LABELS,
               "Share of evaluated features whose drift status is warning or critical "
               "(importance-weighted when the profile has importances)."),
    MetricSpec("mlprobe_schema_violations", "counter", "{violation}", MODEL_LABELS + ("kind",),
               "Inputs that did not fit the reference schema, by kind."),
    # Model quality from outcomes (Probe(quality=...); mlprobe._quality_metrics). Every label
    # value is from a fixed list: results, states, metric names.
    MetricSpec("mlprobe_outcomes", "counter", "{outcome}", MODEL_LABELS + ("result",),
               "Outcomes (labels) recorded, per (prediction, label) pair, by result: matched "
               "(joined by prediction id), paired (joined by the caller), late (its prediction "
               "had expired), duplicate, unknown (no such prediction id), invalid (unreadable)."),
    MetricSpec("mlprobe_prediction_ids", "counter", "{prediction}", MODEL_LABELS + ("state",),
               "Predictions kept for their outcome, by event: stored, replaced (the same id "
               "again), expired (left unmatched after the TTL), evicted (unmatched, to keep "
               "the store within its bounds)."),
    MetricSpec("mlprobe_prediction_store_entries", "gauge", "{prediction}", ("model",),
               "Predictions waiting for their outcome (all versions of the model)."),
    MetricSpec("mlprobe_prediction_store_bytes", "gauge", "By", ("model",),
               "Estimated memory of the predictions waiting for their outcome."),
    MetricSpec("mlprobe_outcome_delay_seconds", "histogram", "s", MODEL_LABELS,
               "Time from a prediction to its outcome, per matched outcome."),
    MetricSpec("mlprobe_outcome_stats", "counter", "1", MODEL_LABELS + ("metric",),
               "Sums over every valid (prediction, label) pair since start, to add up across "
               "replicas: count, correct, true/false positives/negatives (binary), log_loss, "
               "absolute_error, squared_error, absolute_percentage_error, over_error and "
               "under_error (regression; error = prediction - label)."),
    MetricSpec("mlprobe_model_quality", "gauge", "1", MODEL_LABELS + ("metric",),
               "Model quality over the rolling window of labelled pairs, by metric: accuracy, "
               "precision, recall, f1 (binary), precision/recall/f1 macro and f1_micro "
               "(multiclass), log_loss, roc_auc (from binned scores) with roc_auc_bound, ece; "
               "mae, rmse, mape, bias (regression)."),
    MetricSpec("mlprobe_model_quality_estimate", "gauge", "1", MODEL_LABELS + ("metric",),
               "Label-free estimate of accuracy and roc_auc from the scores of every "
               "prediction in the window (assumes calibrated scores and no concept drift)."),
    MetricSpec("mlprobe_model_quality_reference", "gauge", "1", MODEL_LABELS + ("metric",),
               "The model's quality on the reference data (from the profile), by metric."),
    MetricSpec("mlprobe_model_quality_status", "gauge", "1", MODEL_LABELS + ("metric",),
               "Status of each judged metric against its reference: 0 ok, 1 warning, 2 "
               "critical (a 2% / 5% relative drop of accuracy by default; absent: "
               "insufficient data)."),
    MetricSpec("mlprobe_concept_drift_status", "gauge", "1", MODEL_LABELS,
               "Concept-drift signal on the outcome stream: 1 when the loss (0/1 error, "
               "absolute error) rose significantly within the history, else 0 (absent: "
               "insufficient data)."),
    # A candidate model run as a shadow of the primary (mlprobe.Shadow): model_version is the
    # candidate's; its calls, latency, errors and scores are the usual families.
    MetricSpec("mlprobe_shadow_comparisons", "counter", "{prediction}",
               MODEL_LABELS + ("primary_version", "result"),
               "Candidate predictions compared with the primary's, by result: agree (same "
               "class; regression: within the relative tolerance) or disagree."),
    MetricSpec("mlprobe_shadow_dropped", "counter", "{call}", MODEL_LABELS + ("primary_version",),
               "Primary calls not run on the candidate because its queue was full."),
    MetricSpec("mlprobe_shadow_score_difference", "histogram", "1",
               MODEL_LABELS + ("primary_version",),
               "Absolute difference between the candidate's and the primary's score (or "
               "value) per prediction."),
    MetricSpec("mlprobe_internal_errors", "counter", "{error}", (),
               "Failures inside mlprobe (recording, or its part of a scrape) that were "
               "swallowed so the model and the application's metrics were unaffected."),
    # HTTP server metrics (mlprobe.asgi), named as the OTel HTTP semantic conventions render
    # for Prometheus; error_type is semconv's error.type ("" when the request succeeded).
    MetricSpec("http_server_request_duration_seconds", "histogram", "s", HTTP_LABELS,
               "Duration of HTTP server requests, from receipt to the last body byte sent."),
    MetricSpec("http_server_active_requests", "gauge", "{request}", ("http_request_method",),
               "HTTP server requests in progress."),
    MetricSpec("http_server_request_body_size_bytes", "histogram", "By", HTTP_LABELS,
               "Request body bytes received per HTTP request (streamed bodies included)."),
    MetricSpec("http_server_response_body_size_bytes", "histogram", "By", HTTP_LABELS,
               "Response body bytes sent per HTTP request (streamed bodies included)."),
    MetricSpec("http_server_time_to_first_byte_seconds", "histogram", "s", HTTP_LABELS,
               "Time from receipt of an HTTP request to its first response body byte sent."),
)

CATALOG: dict[str, MetricSpec] = {s.name: s for s in _SPECS}


def spec(name: str) -> MetricSpec:
    """Return the declared spec of metric ``name`` (a KeyError is a bug in mlprobe)."""
    return CATALOG[name]


def markdown_table() -> str:
    """The README's metric reference table, generated from the catalogue."""
    rows = ["| metric | type | unit | labels | description |", "| --- | --- | --- | --- | --- |"]
    for s in sorted(CATALOG.values(), key=lambda s: s.name):
        name = exposed_name(s.name, s.kind)
        labels = ", ".join(f"`{label}`" for label in s.labels) or "-"
        rows.append(f"| `{name}` | {s.kind} | `{s.unit}` | {labels} | {s.description} |")
    return "\n".join(rows)
