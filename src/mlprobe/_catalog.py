"""The metric contract: every family mlprobe exports, with its type, unit, labels and help.

This table is the single source of truth. Instruments look their names up here, the exporters
take help texts, units and OpenTelemetry names from it, and a test holds the README's metric
table equal to it.

Two namings, one metric
-----------------------
Each metric has a Prometheus name (``mlprobe_prediction_duration_seconds``) and an
OpenTelemetry name (``mlprobe.prediction.duration``, unit ``s``). They are chosen so that the
usual OTel-to-Prometheus conversion (the collector's Prometheus exporters and the Prometheus
OTLP receiver, and the OTel SDK's Prometheus reader: dots become underscores, the unit's
Prometheus word is appended, a monotonic sum gains ``_total``, a gauge whose unit is ``1``
gains ``_ratio`` in the collector) yields exactly the Prometheus name; attribute keys
(``http.request.method``) become exactly the label names (``http_request_method``). So one
dashboard and one set of alert rules work whether the metrics are scraped or pushed through a
collector. ``tests/test_catalog.py`` checks every name against both conversions.

Hence the units: a dimensionless gauge gets an annotation such as ``{status}`` (not ``1``,
which the collector would render as ``_ratio``); a feature's own values (mean, quantiles, ...)
have no unit (mlprobe does not know it).

Attribute keys: the HTTP metrics use the semantic conventions' keys; prediction errors use
``error.type`` (semconv's key for "the class of error an operation ended with": our exception
type). Every other label keeps its Prometheus name as its attribute key (``model``,
``model_version``, ``feature``, ...): any namespaced key such as ``mlprobe.model`` would render
as a different label (``mlprobe_model``), and ``model.version`` would make ``model`` both an
attribute and a namespace, which the OTel naming rules discourage. In OTLP, an attribute whose
value is empty (``error.type`` of a request that succeeded, ``model_version`` of an unversioned
model) is left out, as semconv asks for ``error.type`` and as Prometheus reads an empty label;
``http.response.status_code`` is an integer attribute, as semconv defines it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ATTRIBUTE_KEYS", "CATALOG", "INT_ATTRIBUTES", "MetricKind", "MetricSpec",
           "exposed_name", "markdown_table", "spec"]

MetricKind = Literal["counter", "gauge", "histogram", "summary"]
"""The kind of a :class:`~mlprobe.snapshot.MetricFamily`, which says the type of its samples."""

MODEL_LABELS = ("model", "model_version")
HTTP_LABELS = ("http_request_method", "http_route", "http_response_status_code",
               "error_type")

ATTRIBUTE_KEYS: dict[str, str] = {
    "http_request_method": "http.request.method",
    "http_route": "http.route",
    "http_response_status_code": "http.response.status_code",
    "error_type": "error.type",
}
"""OpenTelemetry attribute key of each label whose key differs from the label name."""

INT_ATTRIBUTES = frozenset({"http.response.status_code"})
"""Attributes whose OTLP value is an integer (when the label value is a number)."""


def exposed_name(name: str, kind: MetricKind) -> str:
    """The Prometheus name of a metric family: counters gain ``_total``."""
    return name + "_total" if kind == "counter" else name


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """Declared shape of one exported metric family, in both namings.

    ``name`` is the Prometheus base name (a counter is exposed with ``_total``), ``labels`` the
    labels of every sample; the exposition adds ``le`` to histogram buckets and ``quantile``
    to summary quantiles. ``unit`` is the UCUM unit OpenTelemetry carries (empty: unknown, a
    feature's own unit). ``otel_name`` is the OpenTelemetry name (no unit suffix);
    ``updown`` marks a gauge that OpenTelemetry models as an UpDownCounter (a non-monotonic
    sum), as the HTTP semantic conventions do for active requests.
    """

    name: str
    kind: MetricKind
    unit: str
    labels: tuple[str, ...]
    description: str
    otel_name: str
    updown: bool = False

    @property
    def attributes(self) -> tuple[str, ...]:
        """The OpenTelemetry attribute key of each label, in label order."""
        return tuple(ATTRIBUTE_KEYS.get(label, label) for label in self.labels)

    @property
    def exposed_name(self) -> str:
        """The Prometheus name as exposed (counters gain ``_total``)."""
        return exposed_name(self.name, self.kind)

    def otel_attributes(self, labels: tuple[tuple[str, str], ...]) -> dict[str, str | int]:
        """The OpenTelemetry attributes of a sample's labels (see the module docstring): keys
        renamed, empty values left out, :data:`INT_ATTRIBUTES` as integers when numeric."""
        out: dict[str, str | int] = {}
        for label, value in labels:
            if not value:
                continue
            key = ATTRIBUTE_KEYS.get(label, label)
            if key in INT_ATTRIBUTES and value.isascii() and value.isdigit():
                out[key] = int(value)
            else:
                out[key] = value
        return out

    @property
    def otel_type(self) -> str:
        """How OpenTelemetry carries it: ``sum`` (monotonic), ``updown_sum``, ``gauge``,
        ``histogram``, or ``summary_gauges`` (three gauges: the quantiles with a ``quantile``
        attribute, ``<name>.count`` and ``<name>.sum``; see ``mlprobe.exporters.otel``)."""
        if self.kind == "counter":
            return "sum"
        if self.kind == "gauge":
            return "updown_sum" if self.updown else "gauge"
        if self.kind == "summary":
            return "summary_gauges"
        return "histogram"


def _m(name: str, kind: MetricKind, unit: str, labels: tuple[str, ...], otel_name: str,
       description: str, *, updown: bool = False) -> MetricSpec:
    return MetricSpec(name, kind, unit, labels, description, otel_name, updown)


_FEATURE = MODEL_LABELS + ("feature",)
# Bin series also carry the profile fingerprint: replicas with other profiles never mix.
_PROFILED = MODEL_LABELS + ("profile", "feature")

_SPECS = (
    _m("mlprobe_predictions", "counter", "{call}", MODEL_LABELS + ("outcome",),
       "mlprobe.predictions",
       "Calls of the instrumented predict function, by outcome (ok or error)."),
    _m("mlprobe_prediction_errors", "counter", "{call}", MODEL_LABELS + ("error_type",),
       "mlprobe.prediction.errors",
       "Calls that raised, by exception type (capped; extra types count as __other__)."),
    _m("mlprobe_prediction_duration_seconds", "histogram", "s", MODEL_LABELS,
       "mlprobe.prediction.duration",
       "Wall-clock duration of predict calls in seconds."),
    _m("mlprobe_predictions_in_flight", "gauge", "{call}", MODEL_LABELS,
       "mlprobe.predictions.in_flight",
       "Predict calls currently running.", updown=True),
    _m("mlprobe_batch_rows", "histogram", "{row}", MODEL_LABELS, "mlprobe.batch.rows",
       "Rows per predict call."),
    _m("mlprobe_input_bytes", "histogram", "By", MODEL_LABELS, "mlprobe.input",
       "Size of the input's data buffers per predict call, where it is known."),
    _m("mlprobe_prediction_score", "histogram", "1", MODEL_LABELS + ("output",),
       "mlprobe.prediction.score",
       "Distribution of predicted scores, per model output."),
    _m("mlprobe_predicted_class", "counter", "{prediction}", MODEL_LABELS + ("class",),
       "mlprobe.predicted_class",
       "Predicted classes (capped; extra classes count as __other__)."),
    _m("mlprobe_feature_bin", "counter", "{value}", _PROFILED + ("bin",), "mlprobe.feature.bin",
       "Values per reference bin since start: decile bins 0-9 of numeric features, "
       "reference levels and __other__ of categorical ones, feature __prediction__ for "
       "the model's output; profile is a fingerprint of the bins' meaning (sum across "
       "replicas by profile for fleet-wide drift)."),
    _m("mlprobe_feature_reference_ratio", "gauge", "1", _PROFILED + ("bin",),
       "mlprobe.feature.reference_ratio",
       "Reference share of each bin of mlprobe_feature_bin_total."),
    _m("mlprobe_feature_missing", "counter", "{value}", _FEATURE, "mlprobe.feature.missing",
       "Missing values (None, NaN, absent feature) per feature since start."),
    _m("mlprobe_feature_out_of_range", "counter", "{value}", _FEATURE,
       "mlprobe.feature.out_of_range",
       "Numeric values outside the reference [min, max] since start."),
    _m("mlprobe_feature_unseen_category", "counter", "{value}", _FEATURE,
       "mlprobe.feature.unseen_category",
       "Categorical values outside the reference vocabulary since start."),
    _m("mlprobe_feature_mean", "gauge", "", _FEATURE, "mlprobe.feature.mean",
       "Mean of a numeric feature over the rolling window."),
    _m("mlprobe_feature_stddev", "gauge", "", _FEATURE, "mlprobe.feature.stddev",
       "Population standard deviation of a numeric feature over the rolling window."),
    _m("mlprobe_feature_min", "gauge", "", _FEATURE, "mlprobe.feature.min",
       "Minimum of a numeric feature over the rolling window."),
    _m("mlprobe_feature_max", "gauge", "", _FEATURE, "mlprobe.feature.max",
       "Maximum of a numeric feature over the rolling window."),
    _m("mlprobe_feature_quantile", "summary", "", _FEATURE, "mlprobe.feature.quantile",
       "Quantiles 0.05, 0.5 and 0.95 of a numeric feature over the rolling window (1% "
       "relative error); _count and _sum are of the same window, so they can go down."),
    _m("mlprobe_feature_drift", "gauge", "{statistic}", _FEATURE + ("method",),
       "mlprobe.feature.drift",
       "Drift statistic of a feature's rolling window against the reference, by method "
       "(feature __prediction__ is the model's output)."),
    _m("mlprobe_feature_drift_status", "gauge", "{status}", _FEATURE,
       "mlprobe.feature.drift_status",
       "Drift status per feature: 0 ok, 1 warning, 2 critical (absent: insufficient "
       "data)."),
    _m("mlprobe_feature_quality_status", "gauge", "{status}", _FEATURE,
       "mlprobe.feature.quality_status",
       "Data-quality status per feature: 0 ok, 1 warning, 2 critical (missing share "
       "over the reference's, or no valid value at all; absent: insufficient data)."),
    _m("mlprobe_dataset_status", "gauge", "{status}", MODEL_LABELS + ("aspect",),
       "mlprobe.dataset.status",
       "Dataset status, 0 ok, 1 warning, 2 critical, by aspect: drift (the drift "
       "verdict), quality (worst feature quality), model_quality (with quality=...) and "
       "overall (the worst of them; absent: insufficient data)."),
    _m("mlprobe_dataset_drift_share", "gauge", "{share}", MODEL_LABELS,
       "mlprobe.dataset.drift_share",
       "Share of evaluated features whose drift status is warning or critical "
       "(importance-weighted when the profile has importances)."),
    _m("mlprobe_feature_dropped_rows", "counter", "{row}", MODEL_LABELS,
       "mlprobe.feature.dropped_rows",
       "Input rows and predictions left out of the feature statistics because the "
       "monitor's bounded buffer was full (the background flusher fell behind)."),
    _m("mlprobe_schema_violations", "counter", "{violation}", MODEL_LABELS + ("kind",),
       "mlprobe.schema.violations",
       "Inputs that did not fit the reference schema, by kind."),
    # Model quality from outcomes (Probe(quality=...); mlprobe._quality_metrics). Every label
    # value is from a fixed list: results, states, metric names.
    _m("mlprobe_outcomes", "counter", "{outcome}", MODEL_LABELS + ("result",),
       "mlprobe.outcomes",
       "Outcomes (labels) recorded, per (prediction, label) pair, by result: matched "
       "(joined by prediction id), paired (joined by the caller), late (its prediction "
       "had expired), duplicate, unknown (no such prediction id), invalid (unreadable)."),
    _m("mlprobe_prediction_ids", "counter", "{prediction}", MODEL_LABELS + ("state",),
       "mlprobe.prediction_ids",
       "Predictions kept for their outcome, by event: stored, replaced (the same id "
       "again), expired (left unmatched after the TTL), evicted (unmatched, to keep "
       "the store within its bounds)."),
    _m("mlprobe_prediction_store_entries", "gauge", "{prediction}", ("model",),
       "mlprobe.prediction_store.entries",
       "Predictions waiting for their outcome (all versions of the model).", updown=True),
    _m("mlprobe_prediction_store_bytes", "gauge", "By", ("model",), "mlprobe.prediction_store",
       "Estimated memory of the predictions waiting for their outcome.", updown=True),
    _m("mlprobe_waiting_outcomes", "gauge", "{outcome}", ("model",), "mlprobe.waiting_outcomes",
       "Outcomes waiting for their prediction: recorded before it, or, under several "
       "workers, until the worker holding it joins them (at most unknown_grace_seconds).",
       updown=True),
    _m("mlprobe_outcome_delay_seconds", "histogram", "s", MODEL_LABELS, "mlprobe.outcome.delay",
       "Time from a prediction to its outcome, per matched outcome."),
    _m("mlprobe_outcome_stats", "counter", "{value}", MODEL_LABELS + ("metric",),
       "mlprobe.outcome.stats",
       "Sums over every valid (prediction, label) pair since start, to add up across "
       "replicas: count, correct, true/false positives/negatives (binary), log_loss, "
       "absolute_error, squared_error, absolute_percentage_error, over_error and "
       "under_error (regression; error = prediction - label)."),
    _m("mlprobe_model_quality", "gauge", "{statistic}", MODEL_LABELS + ("metric",),
       "mlprobe.model.quality",
       "Model quality over the rolling window of labelled pairs, by metric: accuracy, "
       "precision, recall, f1 (binary), precision/recall/f1 macro and f1_micro "
       "(multiclass), log_loss, roc_auc (from binned scores) with roc_auc_bound, ece; "
       "mae, rmse, mape, bias (regression)."),
    _m("mlprobe_model_quality_estimate", "gauge", "{statistic}", MODEL_LABELS + ("metric",),
       "mlprobe.model.quality_estimate",
       "Label-free estimate of accuracy and roc_auc from the scores of every "
       "prediction in the window (assumes calibrated scores and no concept drift)."),
    _m("mlprobe_model_quality_reference", "gauge", "{statistic}", MODEL_LABELS + ("metric",),
       "mlprobe.model.quality_reference",
       "The model's quality on the reference data (from the profile), by metric."),
    _m("mlprobe_model_quality_status", "gauge", "{status}", MODEL_LABELS + ("metric",),
       "mlprobe.model.quality_status",
       "Status of each judged metric against its reference: 0 ok, 1 warning, 2 "
       "critical (a 2% / 5% relative drop of accuracy by default; absent: "
       "insufficient data)."),
    _m("mlprobe_concept_drift_status", "gauge", "{status}", MODEL_LABELS,
       "mlprobe.concept_drift.status",
       "Concept-drift signal on the outcome stream: 1 when the loss (0/1 error, "
       "absolute error) rose significantly within the history, else 0 (absent: "
       "insufficient data)."),
    # A candidate model run as a shadow of the primary (mlprobe.Shadow): model_version is the
    # candidate's; its calls, latency, errors and scores are the usual families.
    _m("mlprobe_shadow_comparisons", "counter", "{prediction}",
       MODEL_LABELS + ("primary_version", "result"), "mlprobe.shadow.comparisons",
       "Candidate predictions compared with the primary's, by result: agree (same "
       "class; regression: within the relative tolerance) or disagree."),
    _m("mlprobe_shadow_dropped", "counter", "{call}", MODEL_LABELS + ("primary_version",),
       "mlprobe.shadow.dropped",
       "Primary calls not run on the candidate: its queue was full, or (process "
       "isolation) their arguments did not pickle, its process died holding them, or "
       "the shadow stopped."),
    _m("mlprobe_shadow_score_difference", "histogram", "1",
       MODEL_LABELS + ("primary_version",), "mlprobe.shadow.score_difference",
       "Absolute difference between the candidate's and the primary's score (or "
       "value) per prediction."),
    _m("mlprobe_internal_errors", "counter", "{error}", (), "mlprobe.internal.errors",
       "Failures inside mlprobe (recording, or its part of a scrape) that were "
       "swallowed so the model and the application's metrics were unaffected."),
    _m("mlprobe_export_failures", "counter", "{export}", ("exporter",),
       "mlprobe.export.failures",
       "Pushes of mlprobe's metrics that failed (collector down, slow or refusing), by "
       "exporter; each is retried with backoff."),
    # Multi-process mode (mlprobe.multiprocess) only.
    _m("mlprobe_worker_processes", "gauge", "{process}", (), "mlprobe.worker.processes",
       "Live worker processes whose state this view merges (multi-process mode; the "
       "answering worker included)."),
    _m("mlprobe_unmerged_worker_states", "gauge", "{state}", ("reason",),
       "mlprobe.unmerged_worker.states",
       "Other workers' states this view could not merge, by reason: settings_differ "
       "(another bucket, cap or profile setting), unknown_source (a probe this worker has "
       "not created), unreadable (multi-process mode)."),
    # HTTP server metrics (mlprobe.asgi): the OTel HTTP semantic conventions' names and
    # attributes (time to first byte is mlprobe's own); error_type is semconv's error.type
    # ("" when the request succeeded).
    _m("http_server_request_duration_seconds", "histogram", "s", HTTP_LABELS,
       "http.server.request.duration",
       "Duration of HTTP server requests, from receipt to the last body byte sent."),
    _m("http_server_active_requests", "gauge", "{request}", ("http_request_method",),
       "http.server.active_requests",
       "HTTP server requests in progress.", updown=True),
    _m("http_server_request_body_size_bytes", "histogram", "By", HTTP_LABELS,
       "http.server.request.body.size",
       "Request body bytes received per HTTP request (streamed bodies included)."),
    _m("http_server_response_body_size_bytes", "histogram", "By", HTTP_LABELS,
       "http.server.response.body.size",
       "Response body bytes sent per HTTP request (streamed bodies included)."),
    _m("http_server_time_to_first_byte_seconds", "histogram", "s", HTTP_LABELS,
       "http.server.time_to_first_byte",
       "Time from receipt of an HTTP request to its first response body byte sent."),
)

CATALOG: dict[str, MetricSpec] = {s.name: s for s in _SPECS}
"""Every exported metric family by Prometheus base name."""


def spec(name: str) -> MetricSpec:
    """Return the declared spec of metric ``name`` (a KeyError is a bug in mlprobe)."""
    return CATALOG[name]


def markdown_table() -> str:
    """The README's metric reference table, generated from the catalogue."""
    rows = ["| Prometheus metric | type | labels | OpenTelemetry metric | unit | description |",
            "| --- | --- | --- | --- | --- | --- |"]
    for s in sorted(CATALOG.values(), key=lambda s: s.name):
        labels = ", ".join(f"`{label}`" for label in s.labels) or "-"
        notes = {"updown_sum": ["up-down counter"],
                 "summary_gauges": ["gauges: the quantiles, `.count`, `.sum`"]
                 }.get(s.otel_type, [])
        renamed = [f"`{a}`" for label, a in zip(s.labels, s.attributes) if a != label]
        if renamed:
            notes.append("attributes " + ", ".join(renamed))
        otel = f"`{s.otel_name}`" + (f" ({'; '.join(notes)})" if notes else "")
        unit = f"`{s.unit}`" if s.unit else "-"
        rows.append(f"| `{s.exposed_name}` | {s.kind} | {labels} | {otel} | {unit} | "
                    f"{s.description} |")
    return "\n".join(rows)
